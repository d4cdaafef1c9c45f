//! The statistics search (`urn:snow:stats:1`, docs/architecture.md §5, §6): what a GP may
//! ask a lab's search agent, and what comes back.
//!
//! A query is parameters only — analysis, period, area, optional age group
//! and sex, granularity — each parsed into a closed type here, so nothing
//! the GP typed can reach SQL. Which analysis codes and age groups exist is
//! the lab's configuration: the agent checks membership; this module checks
//! shape.
//!
//! Codes are read in any case (`infa`, `f`, `Week`, `ALL`) and kept in one
//! form. An area is shown to the GP as they type it (`5401`, `54`, `all`:
//! [`Area::code`], [`Area::describe`]); `county:NN` / `municipality:NNNN`
//! is the wire form only, and no error speaks it.
//!
//! Which choices there are — the lab's analyses, the areas and weeks it
//! has data for, age groups, sexes, granularities — is its agent's
//! [`Catalogue`], for a search form.
//!
//! An answer has a bucket for every period asked: its counts, or no data
//! when the whole bucket lies outside the weeks the lab has data for (a
//! real zero is a count of 0).
//!
//! Months are made of ISO weeks: a week belongs to the month of its
//! Thursday (the same rule that puts a week in an ISO year), because the
//! lab keeps weekly aggregates only.

use std::fmt;
use std::str::FromStr;

use time::{Date, Month as TimeMonth, Weekday};

/// Longest period one query may cover: about ten years.
pub const MAX_PERIOD_WEEKS: u32 = 530;

/// The resource of a lab's search agent when it runs in the lab server's
/// process (`search@lab.example/agent`): where GPs' searches go.
pub const SEARCH_AGENT_RESOURCE: &str = "agent";

/// The search agent of the lab `lab` (in the lab server's process).
pub fn search_agent_of(lab: &str) -> String {
    format!("search@{lab}/{SEARCH_AGENT_RESOURCE}")
}
pub const MAX_PERIOD_MONTHS: u32 = 122;

/// A parameter that was refused: which one and why (never its value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct StatsError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse<T>(field: &'static str, reason: impl Into<String>) -> Result<T, StatsError> {
    Err(StatsError { field, reason: reason.into() })
}

/// An ISO 8601 week (`2026-W05`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoWeek {
    year: i32,
    week: u8,
}

impl IsoWeek {
    pub fn new(year: i32, week: u8) -> Option<IsoWeek> {
        ((1900..=2200).contains(&year) && week >= 1 && week <= weeks_in_year(year)).then_some(IsoWeek { year, week })
    }

    /// The week a date falls in.
    pub fn of(date: Date) -> IsoWeek {
        let (year, week, _) = date.to_iso_week_date();
        IsoWeek { year, week }
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn week(self) -> u8 {
        self.week
    }

    /// `year * 100 + week`: orders like the weeks, and is how the lab's
    /// store indexes them.
    pub fn key(self) -> i32 {
        self.year * 100 + i32::from(self.week)
    }

    pub fn thursday(self) -> Date {
        // `new` only builds weeks that exist.
        Date::from_iso_week_date(self.year, self.week, Weekday::Thursday).unwrap_or(Date::MIN)
    }

    /// The month this week counts in (its Thursday's).
    pub fn month(self) -> YearMonth {
        let t = self.thursday();
        YearMonth { year: t.year(), month: u8::from(t.month()) }
    }

    pub fn next(self) -> IsoWeek {
        if self.week < weeks_in_year(self.year) {
            IsoWeek { year: self.year, week: self.week + 1 }
        } else {
            IsoWeek { year: self.year + 1, week: 1 }
        }
    }

    /// Weeks from `self` to `to`, both included (0 if `to` is earlier).
    pub fn span(self, to: IsoWeek) -> u32 {
        let days = (to.thursday() - self.thursday()).whole_days();
        if days < 0 {
            0
        } else {
            (days / 7) as u32 + 1
        }
    }

    /// The week `n` weeks before this one.
    pub fn minus(self, n: u32) -> IsoWeek {
        IsoWeek::of(self.thursday() - time::Duration::weeks(i64::from(n)))
    }
}

/// 52 or 53.
pub fn weeks_in_year(year: i32) -> u8 {
    // Dec 28 is always in the last week of its ISO year.
    Date::from_calendar_date(year, TimeMonth::December, 28).map(|d| d.iso_week()).unwrap_or(52)
}

impl fmt::Display for IsoWeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-W{:02}", self.year, self.week)
    }
}

impl FromStr for IsoWeek {
    type Err = StatsError;
    fn from_str(s: &str) -> Result<Self, StatsError> {
        let (y, w) = s
            .split_once("-W")
            .or_else(|| s.split_once("-w"))
            .ok_or(StatsError { field: "period", reason: "a week is YYYY-Www".into() })?;
        match (digits(y, 4), digits(w, 2)) {
            (Some(y), Some(w)) => IsoWeek::new(y as i32, w as u8),
            _ => None,
        }
        .ok_or(StatsError { field: "period", reason: "no such ISO week".into() })
    }
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// A calendar month (`2026-01`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    year: i32,
    month: u8,
}

impl YearMonth {
    pub fn new(year: i32, month: u8) -> Option<YearMonth> {
        ((1900..=2200).contains(&year) && (1..=12).contains(&month)).then_some(YearMonth { year, month })
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    fn index(self) -> i64 {
        i64::from(self.year) * 12 + i64::from(self.month) - 1
    }

    pub fn next(self) -> YearMonth {
        if self.month == 12 {
            YearMonth { year: self.year + 1, month: 1 }
        } else {
            YearMonth { year: self.year, month: self.month + 1 }
        }
    }

    /// The first and last ISO week counted in this month.
    pub fn weeks(self) -> (IsoWeek, IsoWeek) {
        let first = Date::from_calendar_date(self.year, month_of(self.month), 1).unwrap_or(Date::MIN);
        // The first Thursday on or after the 1st.
        let to_thu = (7 + 3 - i64::from(first.weekday().number_days_from_monday())) % 7;
        let start = IsoWeek::of(first + time::Duration::days(to_thu));
        let next = self.next();
        let first_next = Date::from_calendar_date(next.year, month_of(next.month), 1).unwrap_or(Date::MIN);
        let to_thu = (7 + 3 - i64::from(first_next.weekday().number_days_from_monday())) % 7;
        let end = IsoWeek::of(first_next + time::Duration::days(to_thu) - time::Duration::weeks(1));
        (start, end)
    }
}

fn month_of(m: u8) -> TimeMonth {
    TimeMonth::try_from(m).unwrap_or(TimeMonth::January)
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for YearMonth {
    type Err = StatsError;
    fn from_str(s: &str) -> Result<Self, StatsError> {
        let (y, m) = s.split_once('-').ok_or(StatsError { field: "period", reason: "a month is YYYY-MM".into() })?;
        match (digits(y, 4), digits(m, 2)) {
            (Some(y), Some(m)) => YearMonth::new(y as i32, m as u8),
            _ => None,
        }
        .ok_or(StatsError { field: "period", reason: "no such month".into() })
    }
}

/// The time a query covers, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Weeks { from: IsoWeek, to: IsoWeek },
    Months { from: YearMonth, to: YearMonth },
}

impl Period {
    /// Parses `from` and `to`, both weeks (`2026-W01`) or both months
    /// (`2026-01`), in order and not longer than about ten years.
    pub fn parse(from: &str, to: &str) -> Result<Period, StatsError> {
        let is_week = |s: &str| s.contains("-W") || s.contains("-w");
        let p = if is_week(from) || is_week(to) {
            Period::Weeks { from: from.parse()?, to: to.parse()? }
        } else {
            Period::Months { from: from.parse()?, to: to.parse()? }
        };
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), StatsError> {
        match *self {
            Period::Weeks { from, to } if from > to => refuse("period", "starts after it ends"),
            Period::Weeks { from, to } if from.span(to) > MAX_PERIOD_WEEKS => {
                refuse("period", format!("longer than {MAX_PERIOD_WEEKS} weeks"))
            }
            Period::Months { from, to } if from > to => refuse("period", "starts after it ends"),
            Period::Months { from, to } if to.index() - from.index() + 1 > i64::from(MAX_PERIOD_MONTHS) => {
                refuse("period", format!("longer than {MAX_PERIOD_MONTHS} months"))
            }
            _ => Ok(()),
        }
    }

    /// The ISO weeks it covers, first and last.
    pub fn weeks(&self) -> (IsoWeek, IsoWeek) {
        match *self {
            Period::Weeks { from, to } => (from, to),
            Period::Months { from, to } => (from.weeks().0, to.weeks().1),
        }
    }

    pub fn bounds(&self) -> (String, String) {
        match self {
            Period::Weeks { from, to } => (from.to_string(), to.to_string()),
            Period::Months { from, to } => (from.to_string(), to.to_string()),
        }
    }
}

/// Where: one municipality (4 digits), one county (the municipality
/// numbers' first two digits), or everything the lab has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Area {
    All,
    County(String),
    Municipality(String),
}

impl Area {
    /// How the lab's store names it, and how the GP types it: `5401`, `54`
    /// or `all`.
    pub fn code(&self) -> &str {
        match self {
            Area::All => "all",
            Area::County(c) | Area::Municipality(c) => c,
        }
    }

    /// In words for the GP: `municipality 5401`, `county 54`, `all areas`.
    pub fn describe(&self) -> String {
        match self {
            Area::All => "all areas".to_owned(),
            Area::County(c) => format!("county {c}"),
            Area::Municipality(m) => format!("municipality {m}"),
        }
    }

    /// Accepts the short form people type: `5401` is a municipality, `54`
    /// a county, `all` (in any case) everything. This is the one syntax
    /// the GP meets (help, errors, the CLI's and the app's output), so the
    /// wire form (`county:54`) is refused here, with the short form to
    /// type instead: accepting it too would make two syntaxes for the same
    /// thing. The wire is read by [`Area::from_str`] alone. The error
    /// speaks the short form only.
    pub fn parse_loose(s: &str) -> Result<Area, StatsError> {
        if digits(s, 4).is_some() {
            return Ok(Area::Municipality(s.to_owned()));
        }
        if digits(s, 2).is_some() {
            return Ok(Area::County(s.to_owned()));
        }
        match s.parse::<Area>() {
            Ok(Area::All) => Ok(Area::All),
            Ok(a) => Err(StatsError {
                field: "area",
                reason: format!("write {} as {}: an area {AREA_WORDS}", a.describe(), a.code()),
            }),
            Err(_) => Err(StatsError { field: "area", reason: AREA_WORDS.into() }),
        }
    }
}

/// How an area is written, in the GP's words (help, errors).
pub const AREA_WORDS: &str = "must be a municipality (4 digits, e.g. 5401), a county (2 digits, e.g. 54) or all";

/// The wire form (`urn:snow:stats:1`, `urn:snow:alert:1`): `all`,
/// `county:NN`, `municipality:NNNN`. Shown to nobody: the GP sees
/// [`Area::code`] or [`Area::describe`].
impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Area::All => f.write_str("all"),
            Area::County(c) => write!(f, "county:{c}"),
            Area::Municipality(m) => write!(f, "municipality:{m}"),
        }
    }
}

/// Reads the wire form, in any case. A refusal names the area in the GP's
/// words, not the wire form (it may reach the GP in an agent's answer).
impl FromStr for Area {
    type Err = StatsError;
    fn from_str(s: &str) -> Result<Self, StatsError> {
        let kind = |k: &str, want: &str| k.eq_ignore_ascii_case(want);
        match s.split_once(':') {
            None if s.eq_ignore_ascii_case("all") => Ok(Area::All),
            Some((k, c)) if kind(k, "county") && digits(c, 2).is_some() => Ok(Area::County(c.to_owned())),
            Some((k, m)) if kind(k, "municipality") && digits(m, 4).is_some() => Ok(Area::Municipality(m.to_owned())),
            _ => refuse("area", AREA_WORDS),
        }
    }
}

/// Sex as the lab records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
    Unknown,
}

impl Sex {
    /// Every sex a search may ask for, in the order a form lists them.
    pub const ALL: [Sex; 3] = [Sex::Male, Sex::Female, Sex::Unknown];

    pub fn code(self) -> &'static str {
        match self {
            Sex::Male => "M",
            Sex::Female => "F",
            Sex::Unknown => "U",
        }
    }
}

/// `M`, `F` or `U`, in any case.
impl FromStr for Sex {
    type Err = StatsError;
    fn from_str(s: &str) -> Result<Self, StatsError> {
        match s {
            "M" | "m" => Ok(Sex::Male),
            "F" | "f" => Ok(Sex::Female),
            "U" | "u" => Ok(Sex::Unknown),
            _ => refuse("sex", "must be M, F or U"),
        }
    }
}

/// How the answer is bucketed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Week,
    Month,
    /// One bucket for the whole period.
    Total,
}

impl Granularity {
    /// Every granularity a query may ask for.
    pub const ALL: [Granularity; 3] = [Granularity::Week, Granularity::Month, Granularity::Total];

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Week => "week",
            Granularity::Month => "month",
            Granularity::Total => "total",
        }
    }
}

/// `week`, `month` or `total`, in any case.
impl FromStr for Granularity {
    type Err = StatsError;
    fn from_str(s: &str) -> Result<Self, StatsError> {
        Granularity::ALL
            .into_iter()
            .find(|g| g.as_str().eq_ignore_ascii_case(s))
            .map_or_else(|| refuse("granularity", "must be week, month or total"), Ok)
    }
}

/// An analysis code: 1 to 16 upper-case letters and digits. Whether the
/// lab runs it is the agent's question.
pub fn check_analysis(code: &str) -> Result<(), StatsError> {
    if (1..=16).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        Ok(())
    } else {
        refuse("analysis", "must be a code of 1 to 16 upper-case letters and digits")
    }
}

/// An analysis code as a GP may type it, in any case (`infa`): the code
/// in upper case, checked with [`check_analysis`].
pub fn normalize_analysis(code: &str) -> Result<String, StatsError> {
    let upper = code.to_ascii_uppercase();
    check_analysis(&upper).map_err(|_| StatsError {
        field: "analysis",
        reason: "must be a code of 1 to 16 letters and digits, e.g. INFA".into(),
    })?;
    Ok(upper)
}

/// An age group: `LOW-HIGH` or `LOW+`, at most 8 characters.
pub fn check_age_group(group: &str) -> Result<(), StatsError> {
    if (1..=8).contains(&group.len()) && group.bytes().all(|b| b.is_ascii_digit() || b == b'-' || b == b'+') {
        Ok(())
    } else {
        refuse("age-group", "must look like 25-44 or 80+")
    }
}

/// What a GP asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    pub analysis: String,
    pub period: Period,
    pub area: Area,
    pub age_group: Option<String>,
    pub sex: Option<Sex>,
    pub granularity: Granularity,
}

impl StatsQuery {
    /// Checks the shape of every parameter.
    pub fn check(&self) -> Result<(), StatsError> {
        check_analysis(&self.analysis)?;
        self.period.check()?;
        if let Some(g) = &self.age_group {
            check_age_group(g)?;
        }
        // Re-parsing the area checks a value built by hand.
        self.area.to_string().parse::<Area>()?;
        Ok(())
    }

    /// The buckets of the answer, in order: (label, first week, last week).
    pub fn buckets(&self) -> Vec<(String, IsoWeek, IsoWeek)> {
        let (first, last) = self.period.weeks();
        match self.granularity {
            Granularity::Total => {
                let (a, b) = self.period.bounds();
                vec![(if a == b { a } else { format!("{a}/{b}") }, first, last)]
            }
            Granularity::Week => {
                let mut out = Vec::new();
                let mut w = first;
                while w <= last {
                    out.push((w.to_string(), w, w));
                    w = w.next();
                }
                out
            }
            Granularity::Month => {
                let mut out = Vec::new();
                let mut m = first.month();
                while m <= last.month() {
                    let (a, b) = m.weeks();
                    out.push((m.to_string(), a.max(first), b.min(last)));
                    m = m.next();
                }
                out
            }
        }
    }
}

/// A count as disclosed: exact, or only known to be below the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Exact(u64),
    /// 1 ≤ count < threshold: shown as `<threshold`.
    Below(u32),
}

impl Count {
    /// Disclosure control: counts from 1 to `threshold - 1` are hidden.
    pub fn disclose(n: u64, threshold: u32) -> Count {
        if n > 0 && n < u64::from(threshold) {
            Count::Below(threshold)
        } else {
            Count::Exact(n)
        }
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Exact(n) => write!(f, "{n}"),
            Count::Below(t) => write!(f, "<{t}"),
        }
    }
}

impl FromStr for Count {
    type Err = StatsError;
    fn from_str(s: &str) -> Result<Self, StatsError> {
        let bad = || StatsError { field: "count", reason: "must be a number or <N".into() };
        match s.strip_prefix('<') {
            Some(t) if t.len() <= 4 => t.parse().map(Count::Below).map_err(|_| bad()),
            Some(_) => Err(bad()),
            None if s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) => {
                s.parse().map(Count::Exact).map_err(|_| bad())
            }
            None => Err(bad()),
        }
    }
}

/// The three counts of a bucket the lab has data for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub tested: Count,
    pub positive: Count,
    /// Distinct positive persons per week, summed over the bucket's weeks.
    pub persons: Count,
}

impl Counts {
    /// Each count with its name (`tested`, `positive`, `persons`: the
    /// names on the wire and in the GP's CSV and JSON).
    pub fn named(&self) -> [(&'static str, Count); 3] {
        [("tested", self.tested), ("positive", self.positive), ("persons", self.persons)]
    }

    /// The names of the counts hidden by disclosure control, in order.
    pub fn suppressed(&self) -> Vec<&'static str> {
        self.named().into_iter().filter(|(_, c)| matches!(c, Count::Below(_))).map(|(n, _)| n).collect()
    }
}

/// One bucket of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// `2026-W05`, `2026-01`, or `FROM/TO` for a total.
    pub label: String,
    /// `None`: no data. Every week of the bucket lies outside the weeks
    /// the lab has data for (before its first import's earliest week or
    /// after the latest), which is not the same as zero. A bucket inside
    /// them with no rows counts zeros.
    pub counts: Option<Counts>,
}

impl Bucket {
    pub fn no_data(&self) -> bool {
        self.counts.is_none()
    }
}

/// What the agent answers: the query it answered, the threshold it
/// applied, and every bucket of the period (zeros and no data included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsAnswer {
    pub query: StatsQuery,
    pub threshold: u32,
    /// The most a published count differs from the true one (the lab's
    /// perturbation table, cell key method); 0: counts are exact.
    pub max_noise: u32,
    pub buckets: Vec<Bucket>,
}

/// The choices a GP may search a lab with (its search agent's
/// catalogue, `<catalogue/>` on the wire): what a search form offers.
///
/// Nothing in it is personal: the lab's codes, the areas it has had rows
/// for (which a search's refusal of an unknown area tells anyone anyway)
/// and the weeks its data covers. That is why the agent answers it in
/// clear text, to any asker, unlike a search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalogue {
    /// The analyses the lab reports, in its order.
    pub analyses: Vec<AnalysisChoice>,
    /// The municipalities and counties the lab has data for, in order of
    /// their codes (a county before its municipalities). `all` is not
    /// listed: it is always a choice.
    pub areas: Vec<AreaChoice>,
    /// The lab's age groups, in its order.
    pub age_groups: Vec<String>,
    pub sexes: Vec<Sex>,
    pub granularities: Vec<Granularity>,
    /// The first and last ISO week the lab has data for, in any analysis
    /// and area; `None` before its first import. A period outside it is
    /// answered "no data".
    pub coverage: Option<(IsoWeek, IsoWeek)>,
}

impl Catalogue {
    /// How many choices it lists (what its size on the wire grows with).
    pub fn entries(&self) -> usize {
        self.analyses.len()
            + self.areas.len()
            + self.age_groups.len()
            + self.sexes.len()
            + self.granularities.len()
            + usize::from(self.coverage.is_some())
    }
}

/// An analysis a search may ask for: its code (`INFA`) and, when known,
/// the name a GP knows it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisChoice {
    pub code: String,
    pub name: Option<String>,
}

/// An area with data: a municipality or a county (never [`Area::All`]),
/// and its name when the lab knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaChoice {
    pub area: Area,
    pub name: Option<String>,
}

/// Longest name of a choice, in bytes: a name is a label in a form, and
/// the catalogue must fit in one stanza.
pub const MAX_CHOICE_NAME_BYTES: usize = 100;

/// A choice's name: 1 to [`MAX_CHOICE_NAME_BYTES`] bytes of text without
/// control characters (it is shown to the GP as a label, on one line).
pub fn check_choice_name(name: &str) -> Result<(), StatsError> {
    if (1..=MAX_CHOICE_NAME_BYTES).contains(&name.len()) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        refuse("name", format!("must be 1 to {MAX_CHOICE_NAME_BYTES} bytes of text on one line"))
    }
}

/// The name GPs know an analysis by, for the codes of Snow's default
/// `[lab] analyses` (Norwegian, as the lab reports them); a lab's own
/// codes have none and are shown by code. The lab's configuration names
/// codes only, so this is where the names come from.
pub fn analysis_name(code: &str) -> Option<&'static str> {
    Some(match code {
        "INFA" => "Influensa A",
        "INFB" => "Influensa B",
        "RSV" => "RS-virus",
        "SARS2" => "SARS-CoV-2",
        "MPV" => "Humant metapneumovirus",
        "MYCPN" => "Mycoplasma pneumoniae",
        _ => return None,
    })
}

/// How the agent's refusal of an unknown area begins (after `area: `).
const NO_DATA_FOR: &str = "no data for ";

impl StatsError {
    /// The agent's refusal of an area the lab has never had a row for, in
    /// any analysis: `area: no data for municipality 9999`. It says no
    /// more than that.
    pub fn no_data_for(area: &Area) -> StatsError {
        StatsError { field: "area", reason: format!("{NO_DATA_FOR}{}", area.describe()) }
    }

    /// The area of a [`no_data_for`](Self::no_data_for) refusal, read back
    /// from an agent's error text; `None` for any other text. Only a
    /// well-formed area comes back, never the peer's text.
    pub fn no_data_area(text: &str) -> Option<Area> {
        let rest = text.strip_prefix("area: ")?.strip_prefix(NO_DATA_FOR)?;
        match rest.split_once(' ')? {
            ("municipality", m) if digits(m, 4).is_some() => Some(Area::Municipality(m.to_owned())),
            ("county", c) if digits(c, 2).is_some() => Some(Area::County(c.to_owned())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_and_months() {
        assert_eq!(weeks_in_year(2026), 53);
        assert_eq!(weeks_in_year(2025), 52);
        let w: IsoWeek = "2026-W53".parse().unwrap();
        assert_eq!(w.next().to_string(), "2027-W01");
        assert!("2025-W53".parse::<IsoWeek>().is_err());
        assert!("2025-W5".parse::<IsoWeek>().is_err());
        assert_eq!(IsoWeek::new(2026, 1).unwrap().span(IsoWeek::new(2026, 8).unwrap()), 8);
        assert_eq!(IsoWeek::new(2026, 8).unwrap().minus(7), IsoWeek::new(2026, 1).unwrap());
        // 2026-01-01 is a Thursday: week 1 belongs to January.
        let jan: YearMonth = "2026-01".parse().unwrap();
        assert_eq!(jan.weeks(), (IsoWeek::new(2026, 1).unwrap(), IsoWeek::new(2026, 5).unwrap()));
        let feb: YearMonth = "2026-02".parse().unwrap();
        assert_eq!(feb.weeks().0, IsoWeek::new(2026, 6).unwrap());
        for w in 1..=53 {
            let w = IsoWeek::new(2026, w).unwrap();
            let (a, b) = w.month().weeks();
            assert!(a <= w && w <= b, "{w} not in its month");
        }
    }

    #[test]
    fn periods_are_bounded_and_ordered() {
        assert!(Period::parse("2026-W08", "2026-W01").is_err());
        assert!(Period::parse("2000-W01", "2026-W01").is_err());
        assert!(Period::parse("2026-01", "2026-W01").is_err());
        assert!(Period::parse("2026-01", "2026-03").is_ok());
        assert!(Period::parse("2026-13", "2026-13").is_err());
    }

    #[test]
    fn parameters_refuse_anything_else() {
        for bad in ["5401' OR 1=1 --", "municipality:54O1", "county:5", "county:", "al", "5401", ""] {
            assert!(bad.parse::<Area>().is_err(), "{bad}");
        }
        for bad in ["5401' OR 1=1 --", "540", "5", "54010", "county:5", "alle", ""] {
            assert!(Area::parse_loose(bad).is_err(), "{bad}");
        }
        assert!(check_analysis("INFA; DROP TABLE weekly").is_err());
        assert!(normalize_analysis("infa; drop table weekly").is_err());
        assert!(normalize_analysis("").is_err() && normalize_analysis("ABCDEFGHIJKLMNOPQ").is_err());
        assert!(check_age_group("0-4' --").is_err());
        assert_eq!(Area::parse_loose("54").unwrap(), Area::County("54".into()));
        assert_eq!(Area::parse_loose("5401").unwrap().code(), "5401");
    }

    /// Codes are understood in any case and come out in one form.
    #[test]
    fn codes_in_any_case() {
        assert_eq!(normalize_analysis("infa").unwrap(), "INFA");
        assert_eq!(normalize_analysis("Sars2").unwrap(), "SARS2");
        assert!(check_analysis("infa").is_err(), "the canonical form stays upper case");
        assert_eq!(["m", "F", "u"].map(|s| s.parse::<Sex>().unwrap()), [Sex::Male, Sex::Female, Sex::Unknown]);
        assert!("x".parse::<Sex>().is_err() && "Male".parse::<Sex>().is_err());
        for (s, g) in [("Week", Granularity::Week), ("MONTH", Granularity::Month), ("total", Granularity::Total)] {
            assert_eq!(s.parse::<Granularity>().unwrap(), g);
        }
        assert!("weekly".parse::<Granularity>().is_err());
        for (s, a) in [
            ("ALL", Area::All),
            ("All", Area::All),
            ("County:54", Area::County("54".into())),
            ("MUNICIPALITY:5401", Area::Municipality("5401".into())),
        ] {
            assert_eq!(s.parse::<Area>().unwrap(), a, "{s}");
        }
        for (s, a) in [("ALL", Area::All), ("all", Area::All)] {
            assert_eq!(Area::parse_loose(s).unwrap(), a, "{s}");
        }
        assert_eq!(Period::parse("2026-w01", "2026-w03").unwrap(), Period::parse("2026-W01", "2026-W03").unwrap());
    }

    /// What the GP reads names areas as they type them, never the wire
    /// form `county:NN` / `municipality:NNNN`.
    #[test]
    fn areas_in_the_gps_words() {
        for bad in ["9", "county:5", "municipality:54O1", "x"] {
            for e in [Area::parse_loose(bad).unwrap_err(), bad.parse::<Area>().unwrap_err()] {
                let text = e.to_string();
                assert!(text.contains("5401") && text.contains("54") && text.contains("all"), "{text}");
                assert!(!text.contains("county:") && !text.contains("municipality:"), "{text}");
            }
        }
        assert_eq!(Area::Municipality("5401".into()).describe(), "municipality 5401");
        assert_eq!(Area::County("54".into()).describe(), "county 54");
        assert_eq!(Area::All.describe(), "all areas");
    }

    /// One area syntax for the GP: the wire form typed where the GP's is
    /// expected is refused, with what to type instead (and the wire is
    /// still read by its own parser).
    #[test]
    fn the_gp_types_areas_in_one_form_only() {
        for (wire, short) in [("county:54", "54"), ("municipality:5401", "5401"), ("County:54", "54")] {
            let text = Area::parse_loose(wire).unwrap_err().to_string();
            assert!(text.contains(&format!(" as {short}:")), "{wire}: {text}");
            assert!(!text.contains("county:") && !text.contains("municipality:"), "{text}");
            assert!(wire.parse::<Area>().is_ok(), "{wire}");
        }
    }

    #[test]
    fn the_unknown_area_refusal_reads_back() {
        for area in [Area::Municipality("9999".into()), Area::County("99".into())] {
            let e = StatsError::no_data_for(&area);
            assert_eq!(e.to_string(), format!("area: no data for {}", area.describe()));
            assert_eq!(StatsError::no_data_area(&e.to_string()), Some(area));
        }
        for other in [
            "area: no data for municipality 99999",
            "area: no data for county 9x",
            "area: no data for all areas",
            "analysis: no data for county 99",
            "no data for county 99",
        ] {
            assert_eq!(StatsError::no_data_area(other), None, "{other}");
        }
    }

    #[test]
    fn suppressed_counts_are_named() {
        let c = Counts { tested: Count::Exact(12), positive: Count::Below(5), persons: Count::Below(5) };
        assert_eq!(c.suppressed(), ["positive", "persons"]);
        let c = Counts { tested: Count::Exact(0), positive: Count::Exact(0), persons: Count::Exact(0) };
        assert!(c.suppressed().is_empty());
        assert!(Bucket { label: "2026-W01".into(), counts: None }.no_data());
    }

    #[test]
    fn choice_names_are_short_single_lines() {
        assert!(check_choice_name("Influensa A").is_ok());
        assert!(check_choice_name("Unjárga – Nesseby").is_ok());
        for bad in ["", "two\nlines", "tab\there", "\u{7f}"] {
            assert_eq!(check_choice_name(bad).unwrap_err().field, "name", "{bad:?}");
        }
        assert!(check_choice_name(&"x".repeat(MAX_CHOICE_NAME_BYTES)).is_ok());
        assert!(check_choice_name(&"x".repeat(MAX_CHOICE_NAME_BYTES + 1)).is_err());
        // The codes of Snow's default `[lab] analyses` (snow-lab).
        for code in ["INFA", "INFB", "RSV", "SARS2", "MPV", "MYCPN"] {
            let name = analysis_name(code).unwrap();
            assert!(check_choice_name(name).is_ok(), "{name}");
        }
        assert_eq!(analysis_name("EBOLA"), None);
    }

    #[test]
    fn disclosure_control() {
        assert_eq!(Count::disclose(0, 5), Count::Exact(0));
        assert_eq!(Count::disclose(1, 5).to_string(), "<5");
        assert_eq!(Count::disclose(4, 5).to_string(), "<5");
        assert_eq!(Count::disclose(5, 5), Count::Exact(5));
        assert_eq!("<5".parse::<Count>().unwrap(), Count::Below(5));
        assert!("-1".parse::<Count>().is_err());
    }

    #[test]
    fn month_buckets_cover_the_period_once() {
        let q = StatsQuery {
            analysis: "INFA".into(),
            period: Period::parse("2025-11", "2026-02").unwrap(),
            area: Area::All,
            age_group: None,
            sex: None,
            granularity: Granularity::Month,
        };
        let b = q.buckets();
        assert_eq!(b.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(), ["2025-11", "2025-12", "2026-01", "2026-02"]);
        for pair in b.windows(2) {
            assert_eq!(pair[0].2.next(), pair[1].1);
        }
        let weekly = StatsQuery { granularity: Granularity::Week, ..q };
        assert_eq!(weekly.buckets().len() as u32, b[0].1.span(b[3].2));
    }
}
