"""The logistics service: owns vehicles, drivers, carriers, transport orders, delivery trips."""
