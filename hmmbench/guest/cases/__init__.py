"""Guest-side halves of the cases: each module's ``observe(ctx, params)`` returns raw observations."""
