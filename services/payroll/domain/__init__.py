"""The payroll rules as plain modules (no nameko): months, pay formulas, facts, the workflow."""
