"""The ClientAccount servicer's file and profile RPCs (chatd.server.chat.file_ops),
mixed into chatd.server.api.client_service.ClientAccountServicer. A slave
relays each to the master as it is: UploadFile's stream of chunks, GetFile's
stream of data, SetProfile and GetProfiles like every unary call
(chatd.server.api.unary). A refusal is the answer's error_code (GetFile's
first frame's); going over a limit ends the call RESOURCE_EXHAUSTED."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc

from chatd.contract import MASTER_HEADER, Code
from chatd.core.types import Role
from chatd.proto import chat_pb2, chat_pb2_grpc
from chatd.server.api.handlers import Malformed
from chatd.server.api.router import Router, relay_timeout
from chatd.server.api.status import abort, end_call, relayed
from chatd.server.api.unary import file_ref, unary
from chatd.server.chat.file_ops import FileOps, Header
from chatd.server.errors import NodeError, NoMaster, OverLimit, RequestRefused

if TYPE_CHECKING:
    Ctx = grpc.aio.ServicerContext[Any, Any]


async def _parsed(chunks: AsyncIterator[Any]) -> AsyncIterator[chat_pb2.UploadChunk]:
    """The upload's chunks; one that does not parse refuses the upload."""
    async for chunk in chunks:
        if isinstance(chunk, Malformed):
            raise RequestRefused(Code.INVALID_FILE, "a chunk that is not an UploadChunk")
        yield chunk


class FileServicer:
    file_ops: FileOps
    router: Router

    # (the servicer's own: chatd.server.api.client_service)
    _relay_metadata: Callable[[Ctx], tuple[tuple[str, str], ...]]
    _master_stub: Callable[
        [Any, Ctx, str, tuple[Role, str]], Awaitable[chat_pb2_grpc.ClientAccountStub | None]
    ]

    async def UploadFile(
        self, request_iterator: AsyncIterator[chat_pb2.UploadChunk], context: Ctx
    ) -> chat_pb2.UploadResult:
        route = self.router.route()
        context.set_trailing_metadata(((MASTER_HEADER, self.router.for_clients(route)),))
        try:
            stub = self.router.master_stub(*route)
        except NoMaster as exc:
            await abort(context, exc)
        if stub is not None:
            meta = self._relay_metadata(context)
            call: Any = stub.UploadFile(
                cast(Any, _parsed(request_iterator)), timeout=relay_timeout(context), metadata=meta
            )
            try:
                return await call  # type: ignore[no-any-return]
            except grpc.aio.AioRpcError as exc:
                await end_call(context, relayed(exc))
        chunks = _parsed(request_iterator)
        try:
            first = await anext(chunks, None)
            if first is None:
                raise RequestRefused(Code.INVALID_FILE, "an upload with no chunk")
            header = Header(first.session_id, first.name, first.content_type, first.total_size)

            async def data() -> AsyncIterator[bytes]:
                yield first.data
                async for chunk in chunks:
                    yield chunk.data

            ref = await self.file_ops.upload(header, data())
        except RequestRefused as exc:
            return chat_pb2.UploadResult(error_code=int(exc.code), error_message=exc.message)
        except (OverLimit, NodeError) as exc:
            await abort(context, exc)
        return chat_pb2.UploadResult(file=file_ref(ref))

    async def GetFile(
        self, request: chat_pb2.FileRequest, context: Ctx
    ) -> AsyncIterator[chat_pb2.FileData]:
        route = self.router.route()
        stub = await self._master_stub(request, context, "request too large", route)
        if stub is not None:
            call: Any = stub.GetFile(request, metadata=self._relay_metadata(context))
            try:
                async for frame in call:
                    yield frame
            except grpc.aio.AioRpcError as exc:
                await end_call(context, relayed(exc))
            finally:
                call.cancel()
            return
        r = request
        ended: OverLimit | NodeError | None = None
        try:
            opened = self.file_ops.open_file(r.session_id, r.file_id, r.thumbnail, r.offset)
            ref, data = await opened
        except RequestRefused as exc:
            yield chat_pb2.FileData(error_code=int(exc.code), error_message=exc.message)
            return
        except (OverLimit, NodeError) as exc:
            ended = exc
        if ended is not None:
            await abort(context, ended)
            return
        yield chat_pb2.FileData(file=file_ref(ref))
        async for blob in data:
            yield chat_pb2.FileData(data=blob)

    @unary(chat_pb2.ServerResponse)
    async def SetProfile(self, request: chat_pb2.ProfileRequest, context: Ctx) -> Any:
        r = request
        await self.file_ops.set_profile(r.session_id, r.display_name, r.avatar_file_id)
        return chat_pb2.ServerResponse()

    @unary(chat_pb2.Profiles)
    async def GetProfiles(self, request: chat_pb2.ProfilesRequest, context: Ctx) -> Any:
        found = await self.file_ops.profiles(request.session_id, list(request.usernames))
        return chat_pb2.Profiles(
            profile=[
                chat_pb2.Profile(
                    username=p.username,
                    display_name=p.display_name,
                    avatar_file_id=p.avatar_file_id,
                )
                for p in found
            ]
        )
