"""A pymodbus (python3-pymodbus) Modbus TCP server for the proxy's Modbus probe: 10 holding and 10
input registers from address 0; reads past them get exception 02 (illegal data address)."""
import sys

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartTcpServer

store = ModbusSlaveContext(hr=ModbusSequentialDataBlock(0, [7] * 10), ir=ModbusSequentialDataBlock(0, [9] * 10), zero_mode=True)
StartTcpServer(context=ModbusServerContext(slaves=store, single=True), address=(sys.argv[1], int(sys.argv[2])))
