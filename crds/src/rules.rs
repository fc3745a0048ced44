//! CEL rules the API server evaluates for a Show (`x-kubernetes-validations`).
//!
//! Each rule has a twin in [`crate::validate`] so that a manifest read from a file (the
//! shard's `--show`) is held to the same standard; the e2e tests prove the server side.

/// Every section's category names an entry of `spec.categories`.
pub const SECTION_CATEGORIES_EXIST: &str = "!has(self.seating.sections) || \
     self.seating.sections.all(s, self.categories.exists(c, c.name == s.category))";

/// Every general-admission area's category names an entry of `spec.categories`.
pub const GA_CATEGORIES_EXIST: &str = "!has(self.seating.generalAdmission) || \
     self.seating.generalAdmission.all(g, self.categories.exists(c, c.name == g.category))";

/// Sales close after they open.
pub const SALES_WINDOW_ORDER: &str = "!has(self.opensAt) || !has(self.closesAt) || \
     timestamp(self.closesAt) > timestamp(self.opensAt)";

/// At least one section or general-admission area.
pub const SEATING_NOT_EMPTY: &str = "(has(self.sections) ? size(self.sections) : 0) + \
     (has(self.generalAdmission) ? size(self.generalAdmission) : 0) > 0";

/// Sections and general-admission areas share one namespace of names.
pub const SEATING_NAMES_DISJOINT: &str = "!has(self.sections) || !has(self.generalAdmission) || \
     self.generalAdmission.all(g, !self.sections.exists(s, s.name == g.name))";

/// A row entry is either one row (`name`) or a range (`names`).
pub const ROW_NAME_XOR_NAMES: &str = "has(self.name) != has(self.names)";

/// Hold TTL between one minute and two hours.
pub const TTL_BOUNDS: &str = "duration(self) >= duration('1m') && duration(self) <= duration('2h')";

/// The pattern a row range must match before the ordering rule looks at it.
pub const ROW_RANGE_PATTERN: &str = "^([A-Z]{1,3}-[A-Z]{1,3}|[1-9][0-9]{0,2}-[1-9][0-9]{0,2})$";

/// A row range runs forward: `A-Z`, `AA-AD`, `1-40` (not `Z-A`). Row labels of one kind
/// order by (length, text): that is their order as row numbers, for letters counted like
/// spreadsheet columns and for numbers without leading zeros alike.
pub const ROW_RANGE_ORDER: &str = "!has(self.names) || \
     !self.names.matches('^([A-Z]{1,3}-[A-Z]{1,3}|[1-9][0-9]{0,2}-[1-9][0-9]{0,2})$') || \
     size(self.names.split('-')[0]) < size(self.names.split('-')[1]) || \
     (size(self.names.split('-')[0]) == size(self.names.split('-')[1]) && \
      self.names.split('-')[0] <= self.names.split('-')[1])";

/// Each row entry as its `[first, last]` labels.
const ROW_BOUNDS: &str = "self.map(r, has(r.name) ? [r.name, r.name] : r.names.split('-'))";

/// Row names are unique within a section once ranges are expanded: no entry overlaps
/// another. Entries are mapped to `[first, last]` labels, so the pairwise check only
/// compares short strings (cheap enough for the API server's cost budget). A label
/// starting with a digit sorts before `A`, which tells numeric rows from lettered ones.
pub fn rows_unique() -> String {
    format!(
        "{ROW_BOUNDS}.all(a, {ROW_BOUNDS}.exists_one(b, \
           (a[0] < 'A') == (b[0] < 'A') && \
           (size(a[0]) < size(b[1]) || (size(a[0]) == size(b[1]) && a[0] <= b[1])) && \
           (size(b[0]) < size(a[1]) || (size(b[0]) == size(a[1]) && b[0] <= a[1]))))"
    )
}

/// Provider mode names its provider and the Secret holding its signing secret.
pub const PROVIDER_NEEDS_SECRET: &str =
    "self.mode != 'provider' || (has(self.provider) && has(self.providerSecretRef))";

/// The payment window: one minute to an hour.
pub const PAYMENT_WINDOW_BOUNDS: &str =
    "duration(self) >= duration('1m') && duration(self) <= duration('1h')";

/// The callback tolerance: ten seconds to ten minutes.
pub const PAYMENT_TOLERANCE_BOUNDS: &str =
    "duration(self) >= duration('10s') && duration(self) <= duration('10m')";

/// A webhook URL is http or https with a host (`isURL` and `url()` are the API server's
/// CEL URL library).
pub const WEBHOOK_URL: &str = "isURL(self) && url(self).getScheme() in ['http', 'https'] && \
     url(self).getHostname() != ''";

/// Kafka refuses the topics `.` and `..` (the pattern admits them).
pub const KAFKA_TOPIC_NOT_DOTS: &str = "self != '.' && self != '..'";
