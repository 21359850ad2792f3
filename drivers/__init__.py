"""Sensor drivers: one sub-package per family, each reached through `hal.open_sensor`."""
