"""Daily reports per site: DuckDB over a Parquet export of the day, written as HTML (inline SVG charts) and CSV.

- :mod:`cloud.reports.traffic`: bytes, messages and 5-minute slots heard per gateway and UTC day (fed by ingest);
- :mod:`cloud.reports.figures`: the day's figures computed with DuckDB SQL over the Parquet export;
- :mod:`cloud.reports.build`: one report from export to files (``report.json``, ``report.html``, CSVs);
- :mod:`cloud.reports.page` and :mod:`cloud.reports.svg`: the HTML page and its charts;
- :mod:`cloud.reports.service`: the reports folder, the API's service and the daily schedule;
- :mod:`cloud.reports.routes`: ``POST /api/v1/reports`` and the report's files.

What each figure means: docs/reports.md.
"""
