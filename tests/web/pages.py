"""Driving the chat page as a person does (clicks, typing, Enter) and
reading it through its test hooks: body[data-node], body[data-user], and
each message's data-message-id and data-state."""

from __future__ import annotations

from typing import Any

from chatd.tools.localcluster import PASSWORD

WAIT_MS = 15000


class ChatPage:
    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []  # console errors, CSP reports, refused messages
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("websocket", self._socket)

    def _socket(self, ws: Any) -> None:
        """A message of the page's the node could not read is an error too."""

        def received(payload: Any) -> None:
            if isinstance(payload, str) and '"INVALID_ARGUMENT"' in payload:
                self.errors.append(f"the node refused a message: {payload[:300]}")

        ws.on("framereceived", received)

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)

    @classmethod
    async def open(cls, context: Any, origin: str) -> ChatPage:
        page = await context.new_page()
        me = cls(page)
        await page.goto(origin + "/")
        await page.wait_for_selector(f'body[data-node="{origin}"]', timeout=WAIT_MS)
        return me

    async def sign_up(self, name: str, password: str = PASSWORD, *, new: bool = True) -> None:
        await self.page.fill("#login-user", name)
        await self.page.fill("#login-pass", password)
        await self.page.click("#signup-btn" if new else "#login-btn")
        await self.page.wait_for_selector(f'body[data-user="{name}"]', timeout=WAIT_MS)

    async def log_in(self, name: str, password: str = PASSWORD) -> None:
        await self.sign_up(name, password, new=False)

    async def open_conv(self, kind: str, name: str) -> None:
        """Opens the conversation with user `name` or in room `name` (its
        entry appears in the list within a refresh)."""
        entry = self.page.locator(f'#sidebar [data-conv="{kind}:{name.lower()}"]')
        await entry.click(timeout=WAIT_MS)
        await self.page.wait_for_selector('body[data-view="conv"]', timeout=WAIT_MS)

    async def type_and_send(self, text: str) -> None:
        box = self.page.locator("#composer-input")
        await box.fill(text)
        await box.press("Enter")

    async def wait_text(self, text: str, state: str = "sent", timeout_ms: int = WAIT_MS) -> None:
        await self.page.locator(
            f'#messages li[data-state="{state}"]', has_text=text
        ).first.wait_for(timeout=timeout_ms)

    async def messages(self) -> list[dict[str, Any]]:
        """The open conversation's messages, top to bottom: each with its
        quote (of the message it answers: "" for none), whether it shows
        "(edited)" or is deleted, its reactions ([emoji, count, mine,
        label]) and the actions it offers (reply, react, edit, delete)."""
        result: list[dict[str, Any]] = await self.page.eval_on_selector_all(
            "#messages li",
            """els => els.map(e => ({
                id: Number(e.dataset.messageId || 0),
                state: e.dataset.state,
                from: e.querySelector('.from').textContent,
                text: e.querySelector('.body').textContent,
                quote: e.querySelector('.quote') ? e.querySelector('.quote').textContent : '',
                edited: e.querySelector('.meta .edited') !== null,
                deleted: e.classList.contains('deleted'),
                reactions: [...e.querySelectorAll('.reactions .chip')].map(c => [
                    c.dataset.emoji, Number(c.querySelector('.count').textContent),
                    c.getAttribute('aria-pressed') === 'true', c.getAttribute('aria-label')]),
                actions: [...e.querySelectorAll('.actions .act')].map(b => b.dataset.key)}))""",
        )
        return result

    async def message(self, message_id: int) -> dict[str, Any]:
        """Message `message_id` as messages() reads it (it must be shown)."""
        found = [m for m in await self.messages() if m["id"] == message_id]
        assert len(found) == 1, (message_id, found)
        return found[0]

    def item(self, message_id: int) -> Any:
        """The element of message `message_id` (a locator)."""
        return self.page.locator(f'#messages li[data-message-id="{message_id}"]')

    async def act(self, message_id: int, action: str) -> None:
        """Clicks action `action` (reply, react, edit, delete) of a message."""
        await self.item(message_id).locator(f'.act[data-key="{action}"]').click()

    async def badge(self, kind: str, name: str) -> int:
        """The unread count the list shows for a conversation (0: none),
        read at once (the list is drawn again as counts change)."""
        count: int = await self.page.evaluate(
            "(s) => { const e = document.querySelector(s); return e ? Number(e.textContent) : 0; }",
            f'#sidebar [data-conv="{kind}:{name.lower()}"] .badge',
        )
        return count

    async def session_token(self) -> str:
        token: str = await self.page.evaluate(
            "JSON.parse(sessionStorage.getItem('chatd.session') || '{}').session || ''"
        )
        return token
