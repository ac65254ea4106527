"""CSV ingest of grid time series into InfluxDB 2.x."""
