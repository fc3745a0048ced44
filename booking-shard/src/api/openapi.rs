//! The OpenAPI document: generated from the handlers' `#[utoipa::path]` descriptions
//! and the wire types, plus what no handler carries (info, servers, security).
//!
//! A shard serves one show, so the document it serves is narrowed to that show: the
//! `show` path parameter, the section, category and area names, the seat ids (a
//! pattern of the show's sections, rows and seat numbers) and the quantity limits are
//! the show's own. A client generator gets the generic document (`openapi()`); a
//! client of this shard learns exactly what it accepts.

use boxoffice_crds::VenueLayout;
use serde_json::{Value, json};

use super::{error, routes, schema};

/// The parts of the OpenAPI document that no handler carries.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "boxoffice booking shard API",
        version = "v1",
        description = "Seats, holds and bookings of one show. Any shard replica answers; standbys forward to the leader, and every answer names it in `x-boxoffice-leader`. Errors share one shape with a stable code (ErrorCode)."
    ),
    servers((url = "/", description = "This shard, or the gateway in front of the show")),
    modifiers(&BearerAuth),
    components(schemas(
        error::ErrorBody,
        error::ErrorCode,
        schema::Snapshot,
        crate::shard::PublicSeatEvent,
        crate::shard::SeatEvent,
    )),
    tags(
        (name = "show", description = "The show, its seats and counts (no sign-in)"),
        (name = "holds", description = "Holding seats and confirming them"),
        (name = "bookings", description = "Bookings and the door"),
        (name = "events", description = "The show's booking events for consumers: the feed, the stream, dead letters (staff)"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "`sub` is the user; `roles: [staff]` (or `admin`) for staff calls",
                    ))
                    .build(),
            ),
        );
    }
}

/// The generic document (show names and seats left open).
pub fn openapi() -> Value {
    use utoipa::OpenApi;
    let mut doc = ApiDoc::openapi();
    doc.merge(routes::document());
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    add_links(&mut value);
    value
}

/// OpenAPI links: what a new hold's id and a new booking's reference can be used for
/// (clients and stateful testers follow them).
fn add_links(doc: &mut Value) {
    let hold = |op: &str| {
        json!({"operationId": op, "parameters": {
            "show": "$request.path.show", "hold": "$response.body#/id"}})
    };
    let booking = |op: &str| {
        json!({"operationId": op, "parameters": {
            "show": "$request.path.show", "reference": "$response.body#/reference"}})
    };
    let hold_links = json!({
        "GetHold": hold("getHold"),
        "ReleaseHold": hold("releaseHold"),
        "ExtendHold": hold("extendHold"),
        "ConfirmHold": hold("confirmHold"),
    });
    let booking_links = json!({
        "GetBooking": booking("getBooking"),
        "CancelBooking": booking("cancelBooking"),
    });
    for (path, method, status, links) in [
        ("/v1/shows/{show}/holds", "post", "201", &hold_links),
        ("/v1/shows/{show}/holds", "post", "200", &hold_links),
        (
            "/v1/shows/{show}/holds/{hold}/confirm",
            "post",
            "201",
            &booking_links,
        ),
        (
            "/v1/shows/{show}/holds/{hold}/confirm",
            "post",
            "200",
            &booking_links,
        ),
    ] {
        if let Some(response) = doc
            .get_mut("paths")
            .and_then(|p| p.get_mut(path))
            .and_then(|p| p.get_mut(method))
            .and_then(|o| o.get_mut("responses"))
            .and_then(|r| r.get_mut(status))
            .and_then(Value::as_object_mut)
        {
            response.insert("links".into(), links.clone());
        }
    }
}

/// What a served document is narrowed to.
pub struct ShowFacts<'a> {
    pub name: &'a str,
    pub layout: &'a VenueLayout,
    pub categories: Vec<String>,
    pub max_per_hold: u32,
}

/// The document a shard serves: `routes` narrowed to its show.
pub fn served(routes: utoipa::openapi::OpenApi, show: &ShowFacts<'_>) -> String {
    use utoipa::OpenApi;
    let mut doc = ApiDoc::openapi();
    doc.merge(routes);
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    add_links(&mut value);
    narrow(&mut value, show);
    serde_json::to_string(&value).unwrap_or_default()
}

fn narrow(doc: &mut Value, show: &ShowFacts<'_>) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for params in item
                .values_mut()
                .filter_map(|op| op.get_mut("parameters"))
                .filter_map(Value::as_array_mut)
            {
                for p in params.iter_mut().filter(|p| p["name"] == "show") {
                    p["schema"] = json!({"type": "string", "enum": [show.name]});
                }
            }
        }
    }
    let Some(schemas) = doc.pointer_mut("/components/schemas") else {
        return;
    };
    let max = show.max_per_hold;
    let names = |v: Vec<String>| (!v.is_empty()).then(|| json!(v));
    let sections = names(
        show.layout
            .sections
            .iter()
            .map(|s| s.name.clone())
            .collect(),
    );
    let areas = names(show.layout.areas.iter().map(|a| a.name.clone()).collect());
    let categories = names(show.categories.clone());
    if let Some(best) = schemas.pointer_mut("/BestRequest/properties") {
        best["quantity"]["maximum"] = json!(max);
        if let Some(s) = sections {
            best["section"] = json!({"type": ["string", "null"], "enum": with_null(s)});
        }
        if let Some(c) = categories {
            best["category"] = json!({"type": ["string", "null"], "enum": with_null(c)});
        }
    }
    if let Some(general) = schemas.pointer_mut("/GeneralRequest/properties") {
        general["quantity"]["maximum"] = json!(max);
        if let Some(a) = areas {
            general["area"] = json!({"type": "string", "enum": a});
        }
    }
    if let Some(seats) = schemas.pointer_mut("/SeatsHold/properties/seats") {
        seats["maxItems"] = json!(max);
        seats["uniqueItems"] = json!(true);
        if let Some(pattern) = seat_pattern(show.layout) {
            seats["items"] = json!({"type": "string", "pattern": pattern});
            if let Some(first) = first_seat(show.layout) {
                seats["example"] = json!([first]);
            }
        }
    }
}

fn with_null(values: Value) -> Value {
    let mut v = values.as_array().cloned().unwrap_or_default();
    v.push(Value::Null);
    Value::Array(v)
}

fn first_seat(layout: &VenueLayout) -> Option<String> {
    let s = layout.sections.first()?;
    let r = s.rows.first()?;
    Some(format!("{}:{}:1", s.name, r.name))
}

/// A regular expression matching exactly the seat ids of the venue: per section its
/// rows, grouped by their number of seats, each group with the range `1..=seats`.
pub fn seat_pattern(layout: &VenueLayout) -> Option<String> {
    let mut alternatives = Vec::new();
    for s in &layout.sections {
        let mut by_count: Vec<(u32, Vec<&str>)> = Vec::new();
        for r in &s.rows {
            match by_count.iter_mut().find(|(n, _)| *n == r.seats) {
                Some((_, rows)) => rows.push(&r.name),
                None => by_count.push((r.seats, vec![&r.name])),
            }
        }
        for (n, rows) in by_count {
            alternatives.push(format!(
                "{}:(?:{}):(?:{})",
                s.name,
                rows.join("|"),
                number_range(n)
            ));
        }
    }
    (!alternatives.is_empty()).then(|| format!("^(?:{})$", alternatives.join("|")))
}

/// A regular expression (no anchors) for the decimal numbers 1..=n, n < 1000.
pub fn number_range(n: u32) -> String {
    let n = n.min(999);
    let mut parts = Vec::new();
    if n >= 1 {
        parts.push(format!("[1-{}]", n.min(9)));
    }
    if n >= 10 {
        let hi = n.min(99);
        let (t, u) = (hi / 10, hi % 10);
        if t > 1 {
            parts.push(format!("[1-{}][0-9]", t - 1));
        }
        parts.push(format!("{t}[0-{u}]"));
    }
    if n >= 100 {
        let (h, t, u) = (n / 100, n % 100 / 10, n % 10);
        if h > 1 {
            parts.push(format!("[1-{}][0-9][0-9]", h - 1));
        }
        if t > 0 {
            parts.push(format!("{h}[0-{}][0-9]", t - 1));
        }
        parts.push(format!("{h}{t}[0-{u}]"));
    }
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_ranges_match_exactly_one_to_n() {
        for n in [
            1, 7, 9, 10, 11, 19, 20, 42, 99, 100, 101, 110, 199, 250, 500, 999,
        ] {
            let re = regex::Regex::new(&format!("^(?:{})$", number_range(n))).expect("regex");
            for k in 0..=1100u32 {
                assert_eq!(
                    re.is_match(&k.to_string()),
                    (1..=n).contains(&k),
                    "n={n} k={k}"
                );
            }
            assert!(!re.is_match("01"), "n={n}: leading zero");
        }
    }

    #[test]
    fn the_seat_pattern_matches_the_venue_and_nothing_else() {
        let seating: boxoffice_crds::Seating = serde_yaml::from_str(
            "sections:\n  - {name: floor, category: std, rows: [{names: \"A-C\", seats: 12}, {name: D, seats: 4}]}\n  - {name: box, category: std, rows: [{names: \"1-2\", seats: 3}]}\n",
        )
        .expect("seating");
        let layout = VenueLayout::from_seating(&seating).expect("layout");
        let re = regex::Regex::new(&seat_pattern(&layout).expect("pattern")).expect("regex");
        for ok in ["floor:A:1", "floor:C:12", "floor:D:4", "box:2:3"] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in [
            "floor:A:13",
            "floor:D:5",
            "floor:E:1",
            "box:3:1",
            "box:1:0",
            "floor:A:1x",
            "x:floor:A:1",
        ] {
            assert!(!re.is_match(bad), "{bad}");
        }
    }
}
