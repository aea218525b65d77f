"""The worker: claims searches from the database, holds their leases and runs them on Ray."""
