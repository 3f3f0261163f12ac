"""knnmem.Error: the one exception type of the client."""
from __future__ import annotations

import grpc


class Error(Exception):
    """A failed call: the gRPC status code and the server's message.

    The server's messages start with the request field they are about
    ("queries.shape[2] = 5, want 4"). Requests the client cannot even encode
    (an array of strings, say) raise it too, with INVALID_ARGUMENT and a
    message in the same form.
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "Error":
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "")

    def __reduce__(self):  # picklable (multiprocessing, joblib)
        return (type(self), (self.code, self.message))


def invalid_argument(message: str) -> Error:
    return Error(grpc.StatusCode.INVALID_ARGUMENT, message)


_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def status_code(value: int) -> grpc.StatusCode:
    """The grpc.StatusCode of a numeric google.rpc.Code."""
    return _BY_VALUE.get(value, grpc.StatusCode.UNKNOWN)
