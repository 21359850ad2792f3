"""ZhianTec/Synochip "EF01" UART modules: ZFM-20/60, R30x, R503, AS608 and clones.

`codec` (pure packet codec), `device` (the driver over pyserial), `emulator`
(the same protocol on the far side of a pseudo-terminal, for tests and demos),
`spy` (frame log at debug level), `ids` (USB-serial bridges they ship with).
"""
