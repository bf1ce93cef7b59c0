"""Recovery service: watches instances, restarts dead ones through the supervisor, audits it all."""
