"""Drives a MODBUS/TCP Security server with pymodbus' TLS client (Debian's python3-pymodbus, 3.0) and
prints what it saw as one JSON object on stdout.

Usage: python3 pymodbus_tls_client.py PORT CA [CERT KEY]

pymodbus 3.0's TLS clients default to its ModbusTlsFramer, which sends bare PDUs; the MODBUS/TCP
Security spec carries the MBAP header inside TLS unchanged, so the client is given the socket (MBAP)
framer. The asyncio client is used: the synchronous one select()s on the raw socket, so it misses
bytes already decrypted into the TLS buffer (a response split across reads) and takes TLS 1.3's
post-handshake session tickets for a failed read. The server certificate is verified against CA, as
the spec's mutual authentication requires.
"""

import asyncio
import json
import ssl
import sys

from pymodbus.client import AsyncModbusTlsClient
from pymodbus.transaction import ModbusSocketFramer


async def outcome(call, field):
    """The values of a response, {"exception": code}, or {"error": ...} when nothing usable came back."""
    try:
        response = await asyncio.wait_for(call(), 5)
    except Exception as err:  # pylint: disable=broad-except
        return {"error": type(err).__name__}
    if response.isError():
        code = getattr(response, "exception_code", None)
        if code is None:
            return {"error": type(response).__name__}
        return {"exception": code}
    return getattr(response, field)


async def main():
    port = int(sys.argv[1])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=sys.argv[2])
    if len(sys.argv) > 4:
        context.load_cert_chain(certfile=sys.argv[3], keyfile=sys.argv[4])
    client = AsyncModbusTlsClient(
        "127.0.0.1", port=port, framer=ModbusSocketFramer, sslctx=context, server_hostname="127.0.0.1", timeout=3, retries=0, reconnect_delay=0
    )
    try:
        await asyncio.wait_for(client.connect(), 5)
    except Exception:  # pylint: disable=broad-except
        pass
    seen = {"connected": bool(client.connected)}
    if client.connected:
        ssl_object = client.protocol.transport.get_extra_info("ssl_object")
        seen["tlsVersion"] = ssl_object.version() if ssl_object else None
        seen["readInputRegisters"] = await outcome(lambda: client.read_input_registers(0, 2, slave=1), "registers")
        seen["writeCoil"] = await outcome(lambda: client.write_coil(0, True, slave=1), "value")
        seen["readCoils"] = await outcome(lambda: client.read_coils(0, 1, slave=1), "bits")
    await client.close()
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
