"""Resources: the external systems the assets talk to, configured per deployment."""
