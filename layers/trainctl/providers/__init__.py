"""What the GPU providers beside AWS share: a small JSON REST client and where their API keys come from."""
