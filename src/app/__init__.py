"""Query API for grid time series."""
