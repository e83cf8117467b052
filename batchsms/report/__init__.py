"""The report stage: dry-run.csv, results files, summary.json and report.html."""
