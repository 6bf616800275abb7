"""The deals service: owns deals, funnel definitions, the stage state machine, stage history,
tasks, reminders, forecast."""
