//! The `lusso.event/v1` contract: one envelope, eleven typed `properties` shapes.
//!
//! The wire form is a flat JSON object (`event_id`, `type`, `ts`, …, `properties`). [`Event`] holds the
//! `type` and `properties` together as the [`Properties`] enum, so a typed event can never disagree with
//! its type. Properties structs accept extra fields (kept in `extra`) because the contract names only the
//! minimum; unknown *envelope* fields are rejected by [`crate::validate`].
//! The JSON Schema served at `GET /v1/schemas/events` is generated from these types by [`json_schema`].

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Schema identifier of the envelope.
pub const SCHEMA_ID: &str = "lusso.event/v1";

/// A validated behavioural event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Idempotency key: the same id is the same event everywhere downstream.
    pub event_id: Uuid,
    /// When the shopper did it (client clock).
    pub ts: DateTime<Utc>,
    /// Registered shopper id, if logged in.
    pub user_id: Option<String>,
    /// Browser/device id; required when `user_id` is absent.
    pub anonymous_id: Option<String>,
    /// Storefront session id.
    pub session_id: Option<String>,
    /// ISO 3166-1 alpha-2 market, e.g. `IT`.
    pub market: Option<String>,
    /// Device class.
    pub device: Option<Device>,
    /// Server-side receive time, stamped by the collector (never taken from the client).
    pub received_at: Option<DateTime<Utc>>,
    /// `type` + typed `properties`.
    pub properties: Properties,
}

impl Event {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        self.properties.event_type()
    }

    /// The partitioning key on the bus: `user_id`, else `anonymous_id` (contract), so one shopper's
    /// events stay ordered in one partition.
    pub fn key(&self) -> &str {
        self.user_id
            .as_deref()
            .or(self.anonymous_id.as_deref())
            .unwrap_or("")
    }

    /// The product this event is about, when it is about exactly one.
    pub fn product_id(&self) -> Option<&str> {
        match &self.properties {
            Properties::ProductView(p) => Some(&p.product_id),
            Properties::AddToCart(p) | Properties::RemoveFromCart(p) => Some(&p.product_id),
            Properties::RecClick(p) => Some(&p.product_id),
            _ => None,
        }
    }

    /// Encodes the event as its canonical JSON bytes (the bus payload).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        // Serializing owned, well-formed data into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Device classes the storefront reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
    App,
    Other,
}

impl Device {
    /// All variants, for validation messages.
    pub const ALL: [Device; 5] = [
        Device::Desktop,
        Device::Mobile,
        Device::Tablet,
        Device::App,
        Device::Other,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::App => "app",
            Device::Other => "other",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Device> {
        Device::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

macro_rules! event_types {
    ($($variant:ident => $name:literal, $props:ty;)*) => {
        /// The event types of `lusso.event/v1`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum EventType { $($variant,)* }

        impl EventType {
            /// Every type, in contract order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            /// Parses a wire name.
            pub fn parse(s: &str) -> Option<EventType> {
                match s { $($name => Some(EventType::$variant),)* _ => None }
            }
        }

        /// Typed `properties`, one variant per event type.
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Properties { $($variant($props),)* }

        impl Properties {
            /// The type these properties belong to.
            pub fn event_type(&self) -> EventType {
                match self { $(Properties::$variant(_) => EventType::$variant,)* }
            }

            /// Decodes `properties` for a given type.
            pub fn from_value(ty: EventType, value: Value) -> serde_json::Result<Properties> {
                Ok(match ty { $(EventType::$variant => Properties::$variant(serde_json::from_value(value)?),)* })
            }

            /// JSON Schema of each type's properties, generated from the structs.
            fn schemas(generator: &mut SchemaGenerator) -> Vec<(&'static str, schemars::Schema)> {
                vec![$(($name, generator.subschema_for::<$props>()),)*]
            }
        }
    };
}

event_types! {
    PageView => "page_view", PageView;
    ProductView => "product_view", ProductView;
    Search => "search", Search;
    AddToCart => "add_to_cart", CartChange;
    RemoveFromCart => "remove_from_cart", CartChange;
    Purchase => "purchase", Purchase;
    Return => "return", Return;
    RecImpression => "rec_impression", RecImpression;
    RecClick => "rec_click", RecClick;
    BannerImpression => "banner_impression", BannerImpression;
    BannerClick => "banner_click", BannerClick;
    ExperimentExposure => "experiment_exposure", ExperimentExposure;
}

/// Extra, undeclared properties: allowed by the contract ("more are allowed") and kept verbatim.
pub type Extra = Map<String, Value>;

/// `page_view`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PageView {
    /// Storefront path, e.g. `/it/donna/abiti`.
    pub path: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `product_view`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductView {
    pub product_id: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Search {
    pub query: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `add_to_cart` and `remove_from_cart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CartChange {
    pub product_id: String,
    /// SKU of the size/colour variant.
    pub variant_id: String,
    pub size: String,
    /// Units, ≥ 1.
    pub quantity: u32,
    /// Unit price in major currency units (EUR unless stated), ≥ 0.
    pub price: f64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One order line in `purchase` and `return`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    pub product_id: String,
    pub variant_id: String,
    /// Units, ≥ 1.
    pub quantity: u32,
    /// Unit price in major currency units, ≥ 0.
    pub unit_price: f64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `purchase`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Purchase {
    pub order_id: String,
    /// ISO 4217 code, e.g. `EUR`.
    pub currency: String,
    /// Order total in major units, ≥ 0.
    pub total: f64,
    pub lines: Vec<OrderLine>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `return`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Return {
    pub order_id: String,
    pub lines: Vec<OrderLine>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `rec_impression`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecImpression {
    pub request_id: String,
    pub product_ids: Vec<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `rec_click`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecClick {
    pub request_id: String,
    pub product_id: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `banner_impression`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BannerImpression {
    pub decision_id: String,
    pub slot: String,
    pub arm_id: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `banner_click`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BannerClick {
    pub decision_id: String,
    pub arm_id: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `experiment_exposure`: a unit was shown its variant of an A/B experiment (logged by serving).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExperimentExposure {
    pub experiment: String,
    pub variant: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The envelope on the wire (borrowing, for serialization).
#[derive(Serialize)]
struct WireOut<'a> {
    event_id: &'a Uuid,
    #[serde(rename = "type")]
    ty: EventType,
    ts: &'a DateTime<Utc>,
    user_id: &'a Option<String>,
    anonymous_id: &'a Option<String>,
    session_id: &'a Option<String>,
    market: &'a Option<String>,
    device: &'a Option<Device>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received_at: &'a Option<DateTime<Utc>>,
    properties: &'a Properties,
}

/// The envelope on the wire (owned, for deserialization). Also the source of the envelope's schema.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "lusso.event/v1")]
struct Envelope {
    /// UUID; the idempotency key.
    event_id: Uuid,
    /// One of the event types; selects the shape of `properties`.
    #[serde(rename = "type")]
    ty: EventType,
    /// RFC 3339 timestamp of the action; at most 24 h in the future.
    ts: DateTime<Utc>,
    /// Registered shopper id. Either `user_id` or a non-empty `anonymous_id` is required.
    #[serde(default)]
    user_id: Option<String>,
    /// Browser/device id.
    #[serde(default)]
    anonymous_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    /// ISO 3166-1 alpha-2 country code of the storefront market.
    #[serde(default)]
    market: Option<String>,
    #[serde(default)]
    device: Option<Device>,
    /// Set by the collector; clients must not send it.
    #[serde(default)]
    #[schemars(skip)]
    received_at: Option<DateTime<Utc>>,
    /// Typed per `type`; see `oneOf`.
    properties: Value,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut {
            event_id: &self.event_id,
            ty: self.event_type(),
            ts: &self.ts,
            user_id: &self.user_id,
            anonymous_id: &self.anonymous_id,
            session_id: &self.session_id,
            market: &self.market,
            device: &self.device,
            received_at: &self.received_at,
            properties: &self.properties,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = Envelope::deserialize(deserializer)?;
        let properties =
            Properties::from_value(w.ty, w.properties).map_err(serde::de::Error::custom)?;
        Ok(Event {
            event_id: w.event_id,
            ts: w.ts,
            user_id: w.user_id,
            anonymous_id: w.anonymous_id,
            session_id: w.session_id,
            market: w.market,
            device: w.device,
            received_at: w.received_at,
            properties,
        })
    }
}

/// The JSON Schema (draft 2020-12) of a `lusso.event/v1` event, generated from the types above:
/// the envelope's fields plus a `oneOf` that ties each `type` to its `properties` shape.
pub fn json_schema() -> Value {
    let mut generator = SchemaGenerator::default();
    let envelope = generator.root_schema_for::<Envelope>();
    let mut root = envelope.to_value();
    let variants: Vec<Value> = Properties::schemas(&mut generator)
        .into_iter()
        .map(|(name, schema)| {
            serde_json::json!({
                "properties": { "type": { "const": name }, "properties": schema.to_value() },
            })
        })
        .collect();
    if let Some(obj) = root.as_object_mut() {
        obj.insert("$id".into(), Value::String(SCHEMA_ID.into()));
        obj.insert("oneOf".into(), Value::Array(variants));
        obj.insert(
            "anyOf".into(),
            serde_json::json!([
                { "required": ["user_id"], "properties": { "user_id": { "type": "string", "minLength": 1 } } },
                { "required": ["anonymous_id"], "properties": { "anonymous_id": { "type": "string", "minLength": 1 } } },
            ]),
        );
        let defs = generator.take_definitions(true);
        let entry = obj
            .entry("$defs")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(existing) = entry.as_object_mut() {
            existing.extend(defs);
        }
    }
    root
}
