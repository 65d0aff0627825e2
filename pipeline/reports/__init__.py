"""Reports: the audit, the shareable population report, the monthly and period reports, charts, disclosure control, the criteria catalogue."""
