"""Drives a Modbus TCP server with pymodbus (Debian's python3-pymodbus, 3.0) through every function
code the appliance serves, and prints what it saw as one JSON object on stdout.

Usage: python3 pymodbus_client.py PORT

The server is expected to serve test/modbus/helpers.ts specModel() as unit 1 (0 and 255 too) and no
unit 5. The caller checks the values, and the writes against its own copy of the model.
"""

import json
import sys

from pymodbus.client import ModbusTcpClient
from pymodbus.mei_message import ReadDeviceInformationRequest


def outcome(response, field):
    """The values of a response, or {"exception": code} for an exception response."""
    if response.isError():
        return {"exception": getattr(response, "exception_code", None), "function": getattr(response, "function_code", None)}
    return getattr(response, field)


def device_info(client, read_code, object_id):
    response = client.execute(ReadDeviceInformationRequest(read_code=read_code, object_id=object_id, unit=1))
    if response.isError():
        return {"exception": response.exception_code}
    return {
        "readCode": response.read_code,
        "conformity": response.conformity,
        "moreFollows": response.more_follows,
        "nextObjectId": response.next_object_id,
        "objects": {str(key): value.decode("ascii") for key, value in response.information.items()},
    }


def main():
    port = int(sys.argv[1])
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    if not client.connect():
        print(json.dumps({"error": f"cannot connect to 127.0.0.1:{port}"}))
        return 1
    seen = {
        "readCoils": outcome(client.read_coils(19, 19, slave=1), "bits")[:19],
        "readDiscreteInputs": outcome(client.read_discrete_inputs(196, 22, slave=1), "bits")[:22],
        "readHoldingRegisters": outcome(client.read_holding_registers(107, 3, slave=1), "registers"),
        "readInputRegisters": outcome(client.read_input_registers(8, 1, slave=1), "registers"),
        "readInputRegistersMax": outcome(client.read_input_registers(0, 125, slave=1), "registers"),
        "writeCoil": outcome(client.write_coil(172, True, slave=1), "value"),
        "writeRegister": outcome(client.write_register(1, 3, slave=1), "value"),
        "writeCoils": outcome(client.write_coils(40, [True, False, True, True, False, False, True, True, True, False], slave=1), "count"),
        "writeRegisters": outcome(client.write_registers(200, [10, 258, 65535], slave=1), "count"),
        "readBackCoils": outcome(client.read_coils(40, 10, slave=1), "bits")[:10],
        "readBackRegisters": outcome(client.read_holding_registers(200, 3, slave=1), "registers"),
        "unit0": outcome(client.read_input_registers(8, 1, slave=0), "registers"),
        "unit255": outcome(client.read_input_registers(8, 1, slave=255), "registers"),
        "unit5": outcome(client.read_input_registers(8, 1, slave=5), "registers"),
        "illegalAddress": outcome(client.read_holding_registers(400, 2, slave=1), "registers"),
        "illegalValue": outcome(client.read_holding_registers(0, 126, slave=1), "registers"),
        "illegalCoilValue": outcome(client.write_coils(0, [True] * 1969, slave=1), "count"),
        "deviceBasic": device_info(client, 0x01, 0x00),
        "deviceRegular": device_info(client, 0x02, 0x00),
        "deviceIndividual": device_info(client, 0x04, 0x05),
        "deviceMissing": device_info(client, 0x04, 0x07),
    }
    client.close()
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
