//! Dynamic broker configs: the cluster-wide defaults of topic configs that `kafka-configs
//! --entity-type brokers --alter` may change at run time, under Kafka's broker names
//! (`log.retention.ms` is the default of `retention.ms`, and so on). A topic's own override
//! still wins. Everything else about the broker is static (flags, environment, file).

use std::collections::BTreeMap;

use super::topic_config;

pub struct DynamicBrokerConfig {
    pub name: &'static str,
    /// The topic config whose default it sets.
    pub topic_config: &'static str,
}

const fn dynamic(name: &'static str, topic_config: &'static str) -> DynamicBrokerConfig {
    DynamicBrokerConfig { name, topic_config }
}

/// Sorted by name.
pub const DYNAMIC_BROKER_CONFIGS: &[DynamicBrokerConfig] = &[
    dynamic("log.cleanup.policy", "cleanup.policy"),
    dynamic("log.index.interval.bytes", "index.interval.bytes"),
    dynamic("log.local.retention.bytes", "local.retention.bytes"),
    dynamic("log.local.retention.ms", "local.retention.ms"),
    dynamic("log.message.timestamp.type", "message.timestamp.type"),
    dynamic("log.retention.bytes", "retention.bytes"),
    dynamic("log.retention.ms", "retention.ms"),
    dynamic("log.roll.ms", "segment.ms"),
    dynamic("log.segment.bytes", "segment.bytes"),
    dynamic("message.max.bytes", "max.message.bytes"),
];

pub fn find(name: &str) -> Option<&'static DynamicBrokerConfig> {
    DYNAMIC_BROKER_CONFIGS.iter().find(|c| c.name == name)
}

/// Why `name` cannot be changed at run time.
pub fn not_dynamic(name: &str) -> String {
    format!(
        "Cannot update {name} dynamically: Tidelog's dynamic broker configs are {}",
        DYNAMIC_BROKER_CONFIGS
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Checks that `name` can change at run time and that `value` is valid for it.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let config = find(name).ok_or_else(|| not_dynamic(name))?;
    topic_config::validate(config.topic_config, value)
        .map_err(|reason| reason.replace(config.topic_config, name))
}

/// The default of a dynamic broker config: its topic config's built-in default.
pub fn default_value(name: &str) -> Option<&'static str> {
    find(name)
        .and_then(|c| topic_config::find(c.topic_config))
        .map(|d| d.default)
}

/// Topic config defaults set by these dynamic broker configs: topic config name → value.
pub fn topic_defaults(broker_configs: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    broker_configs
        .iter()
        .filter_map(|(name, value)| find(name).map(|c| (c.topic_config.to_string(), value.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dynamic_config_maps_to_a_topic_config_in_order() {
        for pair in DYNAMIC_BROKER_CONFIGS.windows(2) {
            assert!(pair[0].name < pair[1].name);
        }
        for config in DYNAMIC_BROKER_CONFIGS {
            let default = default_value(config.name).expect("a topic config default");
            validate(config.name, default).unwrap();
        }
    }

    #[test]
    fn static_or_bad_values_are_refused() {
        assert!(validate("num.partitions", "3").is_err());
        let err = validate("log.retention.ms", "soon").unwrap_err();
        assert!(err.contains("log.retention.ms"), "{err}");
        assert!(validate("log.retention.ms", "1000").is_ok());
        let mut broker = BTreeMap::new();
        broker.insert("log.segment.bytes".to_string(), "2048".to_string());
        assert_eq!(topic_defaults(&broker)["segment.bytes"], "2048");
    }
}
