//! Pages from the templates compiled into the binary, and the two assets
//! (stylesheet, script): no file is read at run time and nothing comes
//! from another host.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, State, Value, context};

use super::i18n::{self, Lang};
use super::users::Session;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("message.html", include_str!("templates/message.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("orders.html", include_str!("templates/orders.html")),
    ("order.html", include_str!("templates/order.html")),
    ("shifts.html", include_str!("templates/shifts.html")),
    ("shift.html", include_str!("templates/shift.html")),
    ("alerts.html", include_str!("templates/alerts.html")),
    ("sms.html", include_str!("templates/sms.html")),
    ("relay.html", include_str!("templates/relay.html")),
    ("relay_dest.html", include_str!("templates/relay_dest.html")),
    ("loyalty.html", include_str!("templates/loyalty.html")),
    ("backoffice.html", include_str!("templates/backoffice.html")),
    ("users.html", include_str!("templates/users.html")),
];

pub const CSS: &str = include_str!("assets/console.css");
pub const JS: &str = include_str!("assets/console.js");

/// The compiled templates.
pub struct Pages {
    env: Environment<'static>,
}

fn lang_of(state: &State) -> Lang {
    match state.lookup("lang").as_ref().and_then(|v| v.as_str()) {
        Some("en") => Lang::En,
        _ => Lang::Ru,
    }
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

impl Pages {
    pub fn new() -> Pages {
        let mut env = Environment::new();
        // A field an answer leaves out (`paused_reason`, a list an API
        // did not return) reads as empty rather than failing the page.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .unwrap_or_else(|e| panic!("console template {name} does not compile: {e}"));
        }
        env.add_filter("money", |state: &State, kop: Option<i64>| {
            kop.map(|k| i18n::money(k, lang_of(state)))
                .unwrap_or_default()
        });
        env.add_filter("quantity", |state: &State, q: Option<i64>| {
            q.map(|q| i18n::quantity(q, lang_of(state)))
                .unwrap_or_default()
        });
        env.add_filter("urlencode", |v: String| super::api::enc(&v));
        Pages { env }
    }

    /// Page `name` for `session` (none on the sign-in page) in `lang`.
    /// `active` marks the menu entry; `data` is the page's own context.
    pub fn page(
        &self,
        status: StatusCode,
        name: &str,
        lang: Lang,
        session: Option<&Session>,
        active: &str,
        data: Value,
    ) -> Response {
        let base = context! {
            lang => lang.code(),
            t => i18n::words(lang),
            active => active,
            user => session.map(|s| &s.user),
            csrf => session.map(|s| s.csrf.as_str()),
        };
        let ctx = context! { ..base, ..data };
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "console page failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "page failed to render").into_response()
            }
        }
    }

    /// A page that says only `message` (refusals, not found).
    pub fn message(
        &self,
        status: StatusCode,
        lang: Lang,
        session: Option<&Session>,
        message: &str,
    ) -> Response {
        self.page(
            status,
            "message.html",
            lang,
            session,
            "",
            context! { message => message },
        )
    }

    /// The refusal of a page or change this person may not see or make.
    pub fn forbidden(&self, lang: Lang, session: &Session) -> Response {
        let words = i18n::words(lang);
        self.message(
            StatusCode::FORBIDDEN,
            lang,
            Some(session),
            words["forbidden"],
        )
    }
}

/// `GET /assets/{file}`: the stylesheet and the script.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (ctype, body) = match file.as_str() {
        "console.css" => ("text/css; charset=utf-8", CSS),
        "console.js" => ("text/javascript; charset=utf-8", JS),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_money_is_russian() {
        let p = Pages::new();
        let t = p
            .env
            .template_from_str("{{ 123450|money }}")
            .unwrap()
            .render(context! { lang => "ru" })
            .unwrap();
        assert_eq!(t, "1\u{a0}234,50\u{a0}₽");
    }

    #[test]
    fn every_page_renders_empty_for_each_role() {
        use crate::console::users::{Role, Session, User};
        let p = Pages::new();
        for role in [Role::Admin, Role::Manager] {
            let s = Session {
                user: User {
                    name: "u".into(),
                    role,
                    restaurants: vec!["101".into()],
                },
                csrf: "c".into(),
            };
            for (name, _) in TEMPLATES.iter().filter(|(n, _)| *n != "base.html") {
                let env = &p.env;
                let ctx = context! {
                    lang => "ru", t => i18n::words(Lang::Ru), user => &s.user, csrf => "c",
                    statuses => ["open"], steps => ["ready"], restaurant => "101",
                    d => context!{ id => "x", restaurants => Vec::<String>::new(), situations => Vec::<i64>::new() },
                    o => crate::core::book::OrderSnapshot::default(),
                    card => context!{ number => "1", holder => context!{} },
                    notice => context!{},
                    r => crate::alerts::report::ShiftReport::default(),
                };
                let r = env.get_template(name).and_then(|t| t.render(ctx));
                assert!(r.is_ok(), "{name} as {role:?}: {:#}", r.unwrap_err());
            }
        }
    }
}
