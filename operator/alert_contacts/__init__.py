"""Kubernetes operator for alert contacts, DingTalk chatbots and contact groups."""
