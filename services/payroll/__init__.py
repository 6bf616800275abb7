"""The payroll service: owns plans, KPI facts, pay schemes, salary documents."""
