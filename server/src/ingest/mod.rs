//! AMQP event source: connection lifecycle, declare, consume, reconnect.
