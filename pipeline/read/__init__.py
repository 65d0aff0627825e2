"""Reading the extracts: find the files in the folder, read them into raw tables with DuckDB's readers."""
