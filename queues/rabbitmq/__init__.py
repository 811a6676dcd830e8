"""The RabbitMQ broker (`RabbitBroker`), in modules: connection, publisher, consumer, probe, topology."""

from queues.rabbitmq.broker import RabbitBroker

__all__ = ["RabbitBroker"]
