"""MQTT broker integration: the interface the ingest sees (:mod:`cloud.broker.base`) and the embedded amqtt broker."""
