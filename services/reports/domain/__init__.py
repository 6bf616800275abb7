"""The reports' rules without nameko or SQL: periods and time buckets, the funnel ladder and its
conversion, percentiles, access scopes, the catalogue of reports and their parameters, and the
CSV/XLSX rendering of a report."""
