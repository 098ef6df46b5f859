"""Cloudflare resources for journal (Hyperdrive configs, Worker scripts) and their API client."""
