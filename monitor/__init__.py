"""monitor: self-hosted image copy detection."""
