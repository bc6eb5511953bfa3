"""The published language of qinqing: event envelope, topic names, versioned event models."""
