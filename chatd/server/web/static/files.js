// Files in the page (docs/web.md "Files"): uploads with POST /files, and a
// message's file shown from GET /files/<id>: an image's thumbnail (a button
// that opens the image, with a Download link, in a dialog), any other file
// as a chip with its name, size and a Download button. Every byte comes
// with fetch() and the session in the X-Chatd-Session header (never in a
// URL), through a blob: URL; a blob URL no longer shown is revoked.

import { ApiError, fileRef } from "./api.js";
import { $, el } from "./ui.js";

const SWEEP_MS = 5000; // how often the blob URLs no longer shown are revoked
const RETRIES = 4; // a download the node could not answer: asked again after 0.5, 1, 2, 4 s
const RETRY_FIRST_MS = 500;

export function sizeText(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

export function isImage(f) {
  return f.content_type.startsWith("image/");
}

export class Files {
  constructor(api) {
    this.api = api;
    this.shown = new Map(); // file_id -> the element that shows it ({node, url})
    this.full = null; // the open dialog's blob URL
    this.returnTo = null;
    setInterval(() => this.sweep(), SWEEP_MS);
    const dialog = $("image-dialog");
    dialog.addEventListener("close", () => this.closed());
    $("image-close").addEventListener("click", () => dialog.close());
  }

  // Uploads `file` (a File or Blob) to the page's node: its FileRef; throws
  // an ApiError (a refusal) or an Error (saying what went wrong).
  async upload(file, name) {
    let res;
    try {
      res = await fetch("/files", {
        method: "POST",
        headers: {
          "X-Chatd-Session": this.api.session || "",
          "X-File-Name": encodeURIComponent(name),
          "Content-Type": file.type || "application/octet-stream",
        },
        body: file,
      });
    } catch (err) {
      throw new Error("the node could not be reached; try again");
    }
    let answer = null;
    try {
      answer = await res.json();
    } catch (err) {
      // (no JSON: the status says it)
    }
    if (res.status === 413) throw new ApiError(31, answer && answer.error ? answer.error.details : "");
    if (answer && answer.error) {
      const e = answer.error;
      if (res.status === 429) throw new Error(`too many uploads: ${e.details || "try again later"}`);
      throw new Error(e.details || `the upload failed (${res.status})`);
    }
    const r = answer && answer.response;
    if (!res.ok || !r) throw new Error(`the upload failed (${res.status})`);
    if (r.error_code) throw new ApiError(r.error_code, r.error_message);
    return fileRef(r.file);
  }

  // A blob: URL of file `id` (`query`: "", "?display=1" or "?thumbnail=1");
  // asked again a few times while the node cannot answer (its master lost:
  // a failover takes a moment), or the bytes stopped coming.
  async blobUrl(id, query = "") {
    for (let attempt = 0; ; attempt++) {
      let failed;
      try {
        const res = await fetch(`/files/${encodeURIComponent(id)}${query}`, {
          headers: { "X-Chatd-Session": this.api.session || "" },
        });
        if (res.ok) return URL.createObjectURL(await res.blob());
        failed = new Error(res.status === 404 ? "file not found" : `could not load (${res.status})`);
        if (res.status < 500) throw failed;
      } catch (err) {
        if (err === failed) throw err;
        failed = new Error("the node could not be reached");
      }
      if (attempt >= RETRIES) throw failed;
      await new Promise((resolve) => setTimeout(resolve, RETRY_FIRST_MS * 2 ** attempt));
    }
  }

  // What shows file `f` of a message: kept by file id, so a message drawn
  // again moves the same element (its image is not fetched again).
  element(f) {
    const kept = this.shown.get(f.file_id);
    if (kept !== undefined) return kept.node;
    const entry = { node: null, url: null };
    entry.node = isImage(f) ? this.thumbnail(f, entry) : this.chip(f);
    this.shown.set(f.file_id, entry);
    return entry.node;
  }

  thumbnail(f, entry) {
    const img = el("img", { className: "thumb-img", alt: f.name });
    const b = el(
      "button",
      {
        type: "button",
        className: "thumb loading",
        "data-key": "file",
        "data-file-id": f.file_id,
        "aria-label": `Open the image ${f.name} (${sizeText(f.size)})`,
      },
      img,
    );
    b.addEventListener("click", () => this.open(f, b));
    this.blobUrl(f.file_id, f.has_thumbnail ? "?thumbnail=1" : "?display=1").then(
      (url) => {
        if (this.shown.get(f.file_id) !== entry) {
          URL.revokeObjectURL(url); // (swept meanwhile)
          return;
        }
        entry.url = url;
        img.src = url;
        b.classList.remove("loading");
      },
      () => {
        b.classList.remove("loading");
        b.replaceChildren(el("span", { className: "file-name", text: `🖼 ${f.name} (not loaded)` }));
        this.shown.delete(f.file_id); // (drawn again, it is asked for again)
      },
    );
    return b;
  }

  chip(f) {
    const get = el("button", {
      type: "button",
      className: "small secondary",
      "data-key": "file",
      text: "Download",
      "aria-label": `Download ${f.name} (${sizeText(f.size)})`,
    });
    const chip = el(
      "div",
      { className: "file-chip", "data-file-id": f.file_id },
      el("span", { className: "file-icon", "aria-hidden": "true", text: "📄" }),
      el("span", { className: "file-name", text: f.name }),
      el("span", { className: "file-size", text: sizeText(f.size) }),
      get,
    );
    get.addEventListener("click", () => this.download(f, get));
    return chip;
  }

  // Saves file `f` (its bytes as an attachment) through a blob: link.
  async download(f, button) {
    button.disabled = true;
    try {
      const url = await this.blobUrl(f.file_id);
      const a = el("a", { href: url, download: f.name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      $("conv-error").textContent = `Could not download ${f.name}: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  }

  // The image `f` whole in the dialog, with its Download link.
  async open(f, from) {
    const dialog = $("image-dialog");
    this.returnTo = from;
    $("image-title").textContent = f.name;
    $("image-size").textContent = sizeText(f.size);
    const img = $("image-full");
    const link = $("image-download");
    img.removeAttribute("src");
    img.alt = f.name;
    link.removeAttribute("href");
    link.download = f.name;
    link.setAttribute("aria-label", `Download ${f.name}`);
    $("image-error").textContent = "";
    if (!dialog.open) dialog.showModal();
    $("image-close").focus();
    try {
      const url = await this.blobUrl(f.file_id, "?display=1");
      if (!dialog.open || this.returnTo !== from) {
        URL.revokeObjectURL(url);
        return;
      }
      if (this.full !== null) URL.revokeObjectURL(this.full);
      this.full = url;
      img.src = url;
      link.href = url;
    } catch (err) {
      $("image-error").textContent = `Could not load the image: ${err.message}`;
    }
  }

  closed() {
    $("image-full").removeAttribute("src");
    $("image-download").removeAttribute("href");
    if (this.full !== null) URL.revokeObjectURL(this.full);
    this.full = null;
    const back = this.returnTo;
    this.returnTo = null;
    if (back !== null && document.body.contains(back)) back.focus();
  }

  // Revokes the blob URLs of the files no longer on the page.
  sweep() {
    for (const [id, entry] of this.shown) {
      if (document.body.contains(entry.node)) continue;
      if (entry.url !== null) URL.revokeObjectURL(entry.url);
      this.shown.delete(id);
    }
  }

  reset() {
    if ($("image-dialog").open) $("image-dialog").close();
    for (const entry of this.shown.values()) if (entry.url !== null) URL.revokeObjectURL(entry.url);
    this.shown.clear();
  }
}
