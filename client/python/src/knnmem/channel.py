"""Channel settings shared by Client and AsyncClient."""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import grpc

Pem = Union[str, bytes, None]

SERVICE = "/knnmem.v1.Memory/"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# grpc.health.v1.HealthCheckResponse.ServingStatus
SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

# No message size limit on the client (the server enforces its own), as the
# C++ client's default.
OPTIONS: List[Tuple[str, int]] = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
]


def _bytes(pem: Pem) -> Optional[bytes]:
    if pem is None:
        return None
    return pem.encode() if isinstance(pem, str) else bytes(pem)


def credentials(root_certs: Pem, cert_chain: Pem,
                private_key: Pem) -> Optional[grpc.ChannelCredentials]:
    """TLS credentials when root_certs (PEM of the CA that signed the server's
    certificate) is given; cert_chain and private_key (PEM) add a client
    certificate for mutual TLS. None: plaintext."""
    if (cert_chain is None) != (private_key is None):
        raise ValueError("cert_chain and private_key go together")
    if root_certs is None:
        if cert_chain is not None:
            raise ValueError("a client certificate (cert_chain) needs root_certs (TLS)")
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_bytes(root_certs), private_key=_bytes(private_key),
        certificate_chain=_bytes(cert_chain))


def metadata(token: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    """Sent on every call: "authorization: Bearer TOKEN" when token is set."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def serving_status(response: bytes) -> str:
    """The status of a serialised HealthCheckResponse: its one field is the
    enum `status = 1` (empty when 0), so the bytes are b"" or 08 NN."""
    value = response[1] if len(response) >= 2 and response[0] == 0x08 else 0
    return SERVING_STATUS.get(value, str(value))
