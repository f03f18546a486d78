"""RunPod beside AWS: its REST API v2 client, pods and network volumes read into the resource model, actions."""
