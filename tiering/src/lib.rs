//! Tidelog's tiered storage (public interface; the implementation arrives with the tiering
//! issue): uploads sealed segments to an object store and reads them back.
//!
//! It sees segments only through `tidelog-storage`'s types and must not know Kafka requests.
