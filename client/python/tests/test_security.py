"""Bearer tokens (read-write and read-only) and TLS, mutual TLS included,
against servers started with the flags of server/service/server_options.cc.
Certificates are made here with openssl, as tests/integration/security_test.cc
makes them."""
import shutil
import subprocess

import grpc
import numpy as np
import pytest

import knnmem
from server_process import ServerProcess

RW = "rw-token-0123456789abcdef"
RO = "ro-token-0123456789abcdef"

CERTS = r"""
set -e
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
for ca in ca1 ca2; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=$ca -keyout $ca.key -out $ca.pem
done
sign() {
  openssl req -newkey rsa:2048 -nodes -subj /CN=$1 -keyout $1.key -out $1.csr
  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -days 2 $3 -out $1.pem
}
sign server ca1 '-extfile san.ext'
sign client1 ca1 ''
sign client2 ca2 ''
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl (scripts/install-deps tls)")
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", "-c", CERTS], cwd=d, check=True, capture_output=True, timeout=60)
    return d


def pem(certs, name):
    return (certs / name).read_bytes()


ROW = np.full((1, 1, 4), 0.5, np.float32)

# Every RPC of the Memory service, and whether it writes.
EVERY_RPC = [
    ("CreateStream", True, lambda c: c.create_stream("t", heads=1, key_dim=4, capacity=10)),
    ("Append", True, lambda c: c.append("t", ROW, ROW, first_position=0)),
    ("AppendStream", True, lambda c: _pipeline(c)),
    ("GetStream", False, lambda c: c.get_stream("t")),
    ("ListStreams", False, lambda c: list(c.list_streams())),
    ("Search", False, lambda c: c.search("t", ROW, 1)),
    ("Attend", False, lambda c: c.attend("t", ROW, 1)),
    ("DecodeStep", False, lambda c: c.decode_step([knnmem.Step("t", ROW)], 1)),
    ("ResetStream", True, lambda c: c.reset_stream("t")),
    ("DeleteStream", True, lambda c: c.delete_stream("t")),
]


def _pipeline(c):
    with c.append_pipeline() as p:
        p.send("t", ROW, ROW, first_position=0)


def code_of(call, client):
    try:
        call(client)
    except knnmem.Error as e:
        return e.code, e.message
    return grpc.StatusCode.OK, ""


def test_tokens_guard_every_rpc_but_health_and_read_only_tokens_cannot_write(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# test tokens\n{RW} rw\n{RO} ro\n")
    with ServerProcess(tmp_path / "data", ["--auth-token-file", str(tokens)]) as server:
        clients = {name: knnmem.Client(server.address, token=token, timeout=10)
                   for name, token in (("none", None), ("wrong", "not-a-token-0123456789"),
                                       ("ro", RO), ("rw", RW))}
        assert clients["none"].health() == "SERVING"  # health needs no token
        for rpc, writes, call in EVERY_RPC:
            code, message = code_of(call, clients["none"])
            assert code == grpc.StatusCode.UNAUTHENTICATED, rpc
            assert message.startswith("authorization"), (rpc, message)
            assert code_of(call, clients["wrong"])[0] == grpc.StatusCode.UNAUTHENTICATED, rpc
            code, message = code_of(call, clients["ro"])
            if writes:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (rpc, message)
            else:
                assert code not in (grpc.StatusCode.UNAUTHENTICATED,
                                    grpc.StatusCode.PERMISSION_DENIED), (rpc, message)
            assert code_of(call, clients["rw"])[0] == grpc.StatusCode.OK, rpc
        for c in clients.values():
            c.close()

        async def async_calls():
            async with knnmem.AsyncClient(server.address, token=RW, timeout=10) as rw, \
                    knnmem.AsyncClient(server.address, token=RO, timeout=10) as ro:
                await rw.create_stream("a", heads=1, key_dim=4, capacity=10)
                with pytest.raises(knnmem.Error) as e:
                    await ro.append("a", ROW, ROW, first_position=0)
                assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
                assert (await ro.get_stream("a")).stream_id == "a"

        import asyncio
        asyncio.run(async_calls())


def test_tls_and_mutual_tls(certs, tmp_path):
    tls = ["--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key")]
    with ServerProcess(tmp_path / "tls", tls) as server:
        with knnmem.Client(server.address, root_certs=pem(certs, "ca1.pem"), timeout=10) as c:
            assert c.create_stream("s", heads=1, key_dim=4, capacity=10).created
            c.append("s", ROW, ROW, first_position=0)
            assert c.search("s", ROW, 1).positions.tolist() == [[[0]]]
        for bad in (knnmem.Client(server.address, timeout=5),  # plaintext
                    knnmem.Client(server.address, root_certs=pem(certs, "ca2.pem"), timeout=5)):
            with bad, pytest.raises(knnmem.Error) as e:
                bad.get_stream("s")
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
    mutual = tls + ["--tls-client-ca", str(certs / "ca1.pem")]
    with ServerProcess(tmp_path / "mtls", mutual) as server:
        def client(cert=None):
            extra = {} if cert is None else {"cert_chain": pem(certs, f"{cert}.pem"),
                                             "private_key": pem(certs, f"{cert}.key")}
            return knnmem.Client(server.address, root_certs=pem(certs, "ca1.pem"),
                                 timeout=5, **extra)
        with client("client1") as c:
            assert c.create_stream("m", heads=1, key_dim=4, capacity=10).created
        for bad in (client(), client("client2")):
            with bad, pytest.raises(knnmem.Error) as e:
                bad.get_stream("m")
            assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_tls_arguments_are_checked():
    with pytest.raises(ValueError):
        knnmem.Client("127.0.0.1:1", cert_chain=b"x")
    with pytest.raises(ValueError):
        knnmem.Client("127.0.0.1:1", root_certs=b"x", cert_chain=b"x")
