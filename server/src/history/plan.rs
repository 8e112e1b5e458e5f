//! A `/api/tasks` query as SQL: the filters the store can apply, the
//! index that narrows a search, and the same order as the in-memory
//! query. Pure; the store runs the plan and `query::TaskQuery::matches`
//! still decides on every row, so the SQL may select more, never fewer.

use crate::query::{SortField, TaskQuery};

use super::schema::{Dialect, PG_SEARCH_TEXT};

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Real(f64),
    Int(i64),
}

/// What the store selects and in which order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Conditions, joined by `AND`, numbered `$1…` in `params` order.
    pub conditions: Vec<String>,
    pub params: Vec<Param>,
    pub order_by: String,
}

impl Plan {
    pub fn of(q: &TaskQuery, dialect: Dialect) -> Plan {
        let mut plan = Plan {
            conditions: Vec::new(),
            params: Vec::new(),
            order_by: order_by(q),
        };
        if let Some(state) = &q.state {
            // States are stored as Celery names them, upper case.
            plan.add("state = $", Param::Text(state.to_uppercase()));
        }
        if let Some(name) = &q.taskname {
            plan.add("lower(name) = $", Param::Text(name.to_lowercase()));
        }
        if let Some(worker) = &q.workername {
            plan.add("lower(worker) = $", Param::Text(worker.to_lowercase()));
        }
        if let Some(root) = &q.root_id {
            // The root itself and every task naming it, as in memory; two
            // indexed lookups rather than one `IN` that neither index serves.
            plan.add_each(
                "(root_id = $ OR uuid = $)",
                [Param::Text(root.clone()), Param::Text(root.clone())],
            );
        }
        // As in memory, a task never received passes the time filters.
        if let Some(start) = q.received_start {
            plan.add("(received IS NULL OR received >= $)", Param::Real(start));
        }
        if let Some(end) = q.received_end {
            plan.add("(received IS NULL OR received <= $)", Param::Real(end));
        }
        let needles = q
            .search
            .as_ref()
            .map(|s| s.required_substrings())
            .unwrap_or_default();
        if !needles.is_empty() {
            match dialect {
                Dialect::Sqlite => {
                    let phrases: Vec<String> = needles
                        .iter()
                        .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
                        .collect();
                    plan.add(
                        "rowid IN (SELECT rowid FROM tasks_search WHERE tasks_search MATCH $)",
                        Param::Text(phrases.join(" AND ")),
                    );
                }
                Dialect::Postgres => {
                    for n in needles {
                        plan.add(
                            &format!("{PG_SEARCH_TEXT} ILIKE $"),
                            Param::Text(format!("%{}%", like_escape(n))),
                        );
                    }
                }
            }
        }
        plan
    }

    /// Adds a condition whose one `$` is the next parameter.
    fn add(&mut self, condition: &str, param: Param) {
        self.add_each(condition, [param]);
    }

    /// Adds a condition whose `$`s are these parameters, in order.
    fn add_each<const N: usize>(&mut self, condition: &str, params: [Param; N]) {
        let mut pieces = condition.split('$');
        let mut numbered = pieces.next().unwrap_or_default().to_owned();
        for (param, piece) in params.into_iter().zip(pieces) {
            self.params.push(param);
            numbered.push_str(&format!("${}{piece}", self.params.len()));
        }
        self.conditions.push(numbered);
    }

    /// The same selection, in Flower's default order (newest first).
    pub fn newest_first(&self) -> Plan {
        Plan {
            order_by: NEWEST_FIRST.into(),
            ..self.clone()
        }
    }

    /// The same selection newest first, strictly after a row whose
    /// `(timestamp or 0, uuid)` is `(timestamp, uuid)`: the next page of a
    /// walk that costs the same whatever page it is on.
    pub fn after(&self, timestamp: f64, uuid: &str) -> Plan {
        let mut plan = self.newest_first();
        let n = plan.params.len();
        plan.params.extend([
            Param::Real(timestamp),
            Param::Real(timestamp),
            Param::Text(uuid.to_owned()),
        ]);
        plan.conditions.push(format!(
            "(coalesce(timestamp, 0) < ${} OR (coalesce(timestamp, 0) = ${} AND uuid < ${}))",
            n + 1,
            n + 2,
            n + 3
        ));
        plan
    }

    pub fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// Flower's default order: the newest state change first.
const NEWEST_FIRST: &str = "coalesce(timestamp, 0) DESC, uuid DESC";

/// `query::TaskQuery::run`'s order in SQL. Missing values sort first
/// ascending and last descending in both databases (their own defaults
/// differ, hence the explicit `IS NULL` keys); the uuid breaks ties.
fn order_by(q: &TaskQuery) -> String {
    let Some(sort) = q.sort_by else {
        return NEWEST_FIRST.into();
    };
    let (key, nullable) = match sort.field {
        SortField::Name => ("lower(name)", true),
        SortField::State => ("lower(state)", false),
        SortField::Received => ("received", true),
        SortField::Started => ("started", true),
    };
    let dir = if sort.descending { "DESC" } else { "ASC" };
    if nullable {
        format!(
            "({key} IS NULL) {}, {key} {dir}, uuid {dir}",
            if sort.descending { "ASC" } else { "DESC" }
        )
    } else {
        format!("{key} {dir}, uuid {dir}")
    }
}

/// Escapes `%`, `_` and the escape character itself for `LIKE`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)], d: Dialect) -> Plan {
        let params: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Plan::of(&TaskQuery::from_params(&params).unwrap(), d)
    }

    #[test]
    fn filters_become_numbered_conditions() {
        let p = plan(
            &[
                ("state", "failure"),
                ("taskname", "Tasks.Add"),
                ("workername", "w1@h"),
            ],
            Dialect::Sqlite,
        );
        assert_eq!(
            p.where_clause(),
            "WHERE state = $1 AND lower(name) = $2 AND lower(worker) = $3"
        );
        assert_eq!(
            p.params,
            [
                Param::Text("FAILURE".into()),
                Param::Text("tasks.add".into()),
                Param::Text("w1@h".into())
            ]
        );
        assert_eq!(p.order_by, "coalesce(timestamp, 0) DESC, uuid DESC");
        assert_eq!(plan(&[], Dialect::Sqlite).where_clause(), "");
    }

    #[test]
    fn a_workflow_is_its_root_and_the_tasks_naming_it() {
        let p = plan(
            &[("state", "FAILURE"), ("root_id", "r-1")],
            Dialect::Postgres,
        );
        assert_eq!(
            p.where_clause(),
            "WHERE state = $1 AND (root_id = $2 OR uuid = $3)"
        );
        assert_eq!(
            p.params[1..],
            [Param::Text("r-1".into()), Param::Text("r-1".into())]
        );
    }

    #[test]
    fn a_search_is_narrowed_by_the_trigram_index() {
        let p = plan(&[("search", "zerodiv")], Dialect::Sqlite);
        assert!(p.conditions[0].contains("tasks_search MATCH $1"), "{p:?}");
        assert_eq!(p.params, [Param::Text("\"zerodiv\"".into())]);
        let p = plan(&[("search", "ZeroDiv 50%_x")], Dialect::Postgres);
        assert_eq!(
            p.params,
            [
                Param::Text("%zerodiv%".into()),
                Param::Text("%50\\%\\_x%".into())
            ]
        );
        assert!(p.conditions[1].ends_with("ILIKE $2"), "{p:?}");
        // An OR cannot be narrowed by a conjunction: every row is a candidate.
        let p = plan(&[("search", "boom OR kaput")], Dialect::Sqlite);
        assert!(p.conditions.is_empty());
    }

    #[test]
    fn the_next_page_starts_after_the_last_row() {
        let p = plan(
            &[("state", "SUCCESS"), ("sort_by", "name")],
            Dialect::Sqlite,
        )
        .after(5.0, "u1");
        assert_eq!(
            p.where_clause(),
            "WHERE state = $1 AND (coalesce(timestamp, 0) < $2 OR (coalesce(timestamp, 0) = $3 AND uuid < $4))"
        );
        assert_eq!(
            p.params[1..],
            [Param::Real(5.0), Param::Real(5.0), Param::Text("u1".into())]
        );
        assert_eq!(p.order_by, NEWEST_FIRST);
    }

    #[test]
    fn the_order_matches_the_memory_query() {
        let p = |s: &str| plan(&[("sort_by", s)], Dialect::Postgres).order_by;
        assert_eq!(
            p("received"),
            "(received IS NULL) DESC, received ASC, uuid ASC"
        );
        assert_eq!(
            p("-received"),
            "(received IS NULL) ASC, received DESC, uuid DESC"
        );
        assert_eq!(p("-state"), "lower(state) DESC, uuid DESC");
    }
}
