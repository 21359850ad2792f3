"""The booking appliance agent: everything it does with an image once the HAL delivers it."""

__version__ = "0.1.0"
