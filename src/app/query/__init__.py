"""The pure translation: request parameters -> QueryPlan (plan) -> Flux text + params (flux)."""
