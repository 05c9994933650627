//! Templates as versioned data in the database. Versions are immutable, so every version read is
//! cached for good; "the latest version of each template" is always asked of the database, so a
//! version added through one server process is used by all of them.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set,
};
use vitalgrid_worker::algorithm::is_implemented;
use vitalgrid_worker::template::{Template, builtin_templates};

use crate::db::entities::template;
use crate::error::AppError;

#[derive(Debug)]
pub struct TemplateStore {
    db: DatabaseConnection,
    cache: RwLock<BTreeMap<(String, u32), Template>>,
}

impl TemplateStore {
    /// Opens the store, adding each built-in template whose id the database does not have yet.
    pub async fn open(db: DatabaseConnection, now_ms: i64) -> Result<Self, DbErr> {
        for builtin in builtin_templates() {
            let known = template::Entity::find()
                .filter(template::Column::Id.eq(&builtin.id))
                .one(&db)
                .await?;
            if known.is_none() {
                let inserted = insert(&db, &builtin, now_ms, None).await;
                // Another server process may have seeded it a moment ago.
                if let Err(error) = inserted {
                    if template::Entity::find()
                        .filter(template::Column::Id.eq(&builtin.id))
                        .one(&db)
                        .await?
                        .is_none()
                    {
                        return Err(error);
                    }
                }
            }
        }
        Ok(Self {
            db,
            cache: RwLock::new(BTreeMap::new()),
        })
    }

    fn remember(&self, template: &Template) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((template.id.clone(), template.version), template.clone());
    }

    /// A version already read by this process, without touching the database.
    pub fn cached(&self, id: &str, version: u32) -> Option<Template> {
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(id.to_owned(), version))
            .cloned()
    }

    pub async fn get(&self, id: &str, version: u32) -> Result<Option<Template>, DbErr> {
        if let Some(found) = self.cached(id, version) {
            return Ok(Some(found));
        }
        let Some(row) = template::Entity::find_by_id((id.to_owned(), version as i32))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let parsed = parse(&row)?;
        self.remember(&parsed);
        Ok(Some(parsed))
    }

    /// Every version of every template, oldest first within each id.
    pub async fn all_versions(&self) -> Result<Vec<Template>, DbErr> {
        let rows = template::Entity::find()
            .order_by_asc(template::Column::Id)
            .order_by_asc(template::Column::Version)
            .all(&self.db)
            .await?;
        let parsed = rows.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
        parsed.iter().for_each(|t| self.remember(t));
        Ok(parsed)
    }

    /// The latest version of each template: what new uploads are checked against.
    pub async fn latest(&self) -> Result<Vec<Template>, DbErr> {
        let mut latest: BTreeMap<String, Template> = BTreeMap::new();
        for candidate in self.all_versions().await? {
            latest.insert(candidate.id.clone(), candidate);
        }
        // Built-ins first, in their usual order, so ties in column matching resolve as before.
        let order: Vec<String> = builtin_templates().into_iter().map(|t| t.id).collect();
        let mut list: Vec<Template> = latest.into_values().collect();
        list.sort_by_key(|t| {
            order
                .iter()
                .position(|id| *id == t.id)
                .unwrap_or(usize::MAX)
        });
        Ok(list)
    }

    /// Stores `proposed` as the next version of template `id` (the version number is assigned here).
    pub async fn add_version(
        &self,
        id: &str,
        mut proposed: Template,
        admin_id: i64,
        now_ms: i64,
    ) -> Result<Template, AppError> {
        let current = template::Entity::find()
            .filter(template::Column::Id.eq(id))
            .order_by_desc(template::Column::Version)
            .one(&self.db)
            .await?
            .ok_or(AppError::NotFound("template"))?;
        let current = parse(&current)?;
        proposed.id = id.to_owned();
        proposed.version = current.version + 1;
        validate(&proposed, &current)?;
        insert(&self.db, &proposed, now_ms, Some(admin_id))
            .await
            .map_err(|error| match AppError::from(error) {
                AppError::Conflict(_) => AppError::Conflict(
                    "another version was added at the same moment; try again".into(),
                ),
                other => other,
            })?;
        self.remember(&proposed);
        Ok(proposed)
    }
}

/// What a new version must satisfy to be usable by the extractor and the workers.
pub fn validate(proposed: &Template, current: &Template) -> Result<(), AppError> {
    let invalid = |message: String| Err(AppError::invalid("invalid_template", message));
    if proposed.kind != current.kind {
        return invalid("a new version cannot change the kind of recording".into());
    }
    if proposed.signals.is_empty() {
        return invalid("a template needs at least one signal".into());
    }
    for rule in &proposed.signals {
        if rule.name.trim().is_empty() {
            return invalid("every signal needs a name".into());
        }
        if !(rule.min.is_finite() && rule.max.is_finite() && rule.min < rule.max) {
            return invalid(format!(
                "signal {}: the plausible range needs min < max",
                rule.name
            ));
        }
    }
    if proposed.algorithms.is_empty() {
        return invalid("a template needs at least one algorithm".into());
    }
    if let Some(unknown) = proposed
        .algorithms
        .iter()
        .find(|name| !is_implemented(name))
    {
        return invalid(format!("algorithm `{unknown}` does not exist"));
    }
    Ok(())
}

fn parse(row: &template::Model) -> Result<Template, DbErr> {
    serde_json::from_str(&row.body).map_err(|error| {
        DbErr::Custom(format!(
            "template {} v{} is unreadable: {error}",
            row.id, row.version
        ))
    })
}

async fn insert(
    db: &impl ConnectionTrait,
    template: &Template,
    now_ms: i64,
    admin_id: Option<i64>,
) -> Result<(), DbErr> {
    let body = serde_json::to_string(template).map_err(|error| DbErr::Custom(error.to_string()))?;
    template::ActiveModel {
        id: Set(template.id.clone()),
        version: Set(template.version as i32),
        body: Set(body),
        created_at_ms: Set(now_ms),
        created_by: Set(admin_id),
    }
    .insert(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_with_an_impossible_range_or_unknown_algorithm_is_refused() {
        let current = builtin_templates().remove(0);
        let mut proposed = current.clone();
        proposed.signals[0].min = 500.0;
        assert!(validate(&proposed, &current).is_err());
        let mut proposed = current.clone();
        proposed.algorithms = vec!["astrology".into()];
        assert!(validate(&proposed, &current).is_err());
        assert!(validate(&current.clone(), &current).is_ok());
    }
}
