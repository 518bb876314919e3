"""What the ingress and the workers share: settings, the messages between them, names in Redis."""
