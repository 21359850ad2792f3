"""USB-serial bridges that ZFM/R30x/R503/AS608 modules are sold with.

Data, not code: `ZfmSensor.usb_ids` declares it to the HAL, which uses it
for discovery (`hal.candidate_ports()`) and the udev rules (systemd/), so the
two never drift apart.
"""

from fpagent.hal.driver import UsbId

USB_IDS = [
    UsbId(0x1A86, 0x7523, "QinHeng CH340 USB-serial (most ZFM/R30x adapter boards)"),
    UsbId(0x1A86, 0x5523, "QinHeng CH341 USB-serial"),
    UsbId(0x1A86, 0x55D4, "QinHeng CH9102 USB-serial"),
    UsbId(0x10C4, 0xEA60, "Silicon Labs CP210x USB-UART bridge"),
    UsbId(0x0403, 0x6001, "FTDI FT232R USB-UART"),
    UsbId(0x0403, 0x6015, "FTDI FT231X/FT230X USB-UART"),
    UsbId(0x067B, 0x2303, "Prolific PL2303 USB-serial"),
    UsbId(0x067B, 0x23A3, "Prolific PL2303GC USB-serial"),
]
