"""Online learning measured: simulators drive the real service and in-process peers."""
