//! The console's words in Russian (the default: owners and managers read
//! Russian) and English, chosen by the `tg_lang` cookie; and money as a
//! Russian reads it, `1 234,50 ₽`.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ru,
    En,
}

impl Lang {
    pub fn of(headers: &HeaderMap) -> Lang {
        match super::auth::cookie(headers, "tg_lang") {
            Some("en") => Lang::En,
            _ => Lang::Ru,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }
}

/// Key, Russian, English.
const WORDS: &[(&str, &str, &str)] = &[
    ("title", "tillgate — консоль", "tillgate console"),
    ("overview", "Обзор", "Overview"),
    ("orders", "Заказы", "Orders"),
    ("shifts", "Смены", "Shifts"),
    ("alerts", "Оповещения", "Alerts"),
    ("sms", "SMS гостям", "Guest SMS"),
    ("relay", "Ретрансляция", "Relay"),
    ("loyalty", "Лояльность", "Loyalty"),
    ("users", "Пользователи", "Users"),
    ("backoffice", "Бэк-офис", "Back office"),
    (
        "bo_sales",
        "Продажи по магазинам и дням",
        "Sales by store and day",
    ),
    ("store", "Магазин", "Store"),
    ("day", "День", "Day"),
    ("bo_total", "Итого", "Total"),
    ("bo_stock", "Остатки", "Stock"),
    ("goods", "Товар", "Goods"),
    ("negative", "минус", "negative"),
    ("last_movement", "Последнее движение", "Last movement"),
    ("bo_switches", "Переключатели карт", "Card switches"),
    ("discount_cards", "Дисконтные карты", "Discount cards"),
    ("payment_cards", "Платёжные карты", "Payment cards"),
    ("not_set", "не задано", "not set"),
    ("updated", "Изменено", "Updated"),
    ("cashiers", "Кассиры", "Cashiers"),
    ("cashier_name", "Имя", "Name"),
    (
        "card_in_open_receipt",
        "Карта в открытом чеке",
        "Card in an open receipt",
    ),
    (
        "manual_card_entry",
        "Ручной ввод карты",
        "Manual card entry",
    ),
    ("resyncs", "Документы пересчёта", "Resync documents"),
    ("cards_checked", "Проверено карт", "Cards checked"),
    ("changed_cards", "Изменено карт", "Cards changed"),
    ("forced", "принудительно", "forced"),
    ("sign_in", "Войти", "Sign in"),
    ("sign_out", "Выйти", "Sign out"),
    ("user_name", "Имя пользователя", "User name"),
    ("password", "Пароль", "Password"),
    (
        "bad_login",
        "Неверное имя или пароль",
        "Wrong user name or password",
    ),
    (
        "too_many",
        "Слишком много неудачных попыток; попробуйте снова через",
        "Too many failed attempts; try again in",
    ),
    ("minutes", "мин.", "min"),
    (
        "login_expired",
        "Форма входа устарела или пришла не с этой страницы; введите имя и пароль ещё раз",
        "The sign-in form expired or did not come from this page; enter your name and password again",
    ),
    (
        "locked",
        "заблокирован после неудачных попыток",
        "locked after failed attempts",
    ),
    ("unlock", "Разблокировать", "Unlock"),
    (
        "test_failed",
        "Telegram не принял сообщение; причину видит администратор в журнале",
        "Telegram did not take the message; an admin sees why in the log",
    ),
    ("restaurant", "Ресторан", "Restaurant"),
    ("all", "все", "all"),
    ("status", "Статус", "Status"),
    ("from", "С", "From"),
    ("to", "По", "To"),
    ("filter", "Показать", "Show"),
    ("next_page", "Дальше →", "Next →"),
    ("opened", "Открыт", "Opened"),
    ("waiter", "Официант", "Waiter"),
    ("table", "Стол", "Table"),
    ("sum", "Сумма", "Sum"),
    ("paid", "Оплачено", "Paid"),
    ("live", "Обновляется без перезагрузки", "Updates live"),
    ("order", "Заказ", "Order"),
    ("dishes", "Блюда", "Dishes"),
    ("quantity", "Кол-во", "Qty"),
    ("price", "Цена", "Price"),
    ("voids", "Удаления", "Voids"),
    ("discounts", "Скидки", "Discounts"),
    ("payments", "Оплаты", "Payments"),
    ("receipts", "Чеки", "Receipts"),
    ("kitchen", "Кухня", "Kitchen"),
    ("events", "События", "Events"),
    ("raw_xml", "XML события", "Event XML"),
    ("cash_servers", "Кассовые серверы", "Cash servers"),
    ("stations", "Станции", "Stations"),
    ("online", "в сети", "online"),
    ("offline", "не в сети", "offline"),
    ("logged_in", "На смене", "Logged in"),
    ("last_event", "Последнее событие", "Last event"),
    ("log_head", "Событий в журнале", "Events in the log"),
    ("gaps", "Пропуски", "Gaps"),
    ("quarantine", "Карантин", "Quarantine"),
    ("consumers", "Обработчики и отставание", "Consumers and lag"),
    ("lag", "Отставание", "Lag"),
    ("destinations", "Получатели", "Destinations"),
    ("shift", "Смена", "Shift"),
    ("closed", "закрыта", "closed"),
    ("open", "открыта", "open"),
    ("revenue", "Выручка", "Revenue"),
    ("open_orders", "Открытых заказов", "Open orders"),
    ("deleted_orders", "Удалённых заказов", "Deleted orders"),
    ("kind", "Вид", "Kind"),
    ("state", "Состояние", "State"),
    ("chat", "Чат", "Chat"),
    ("created", "Создано", "Created"),
    ("error", "Ошибка", "Error"),
    ("enabled", "Включено", "Enabled"),
    (
        "sms_enabled_global",
        "SMS включены в файле настроек",
        "SMS switched on in the config file",
    ),
    ("provider", "Провайдер", "Provider"),
    ("token", "Токен провайдера", "Provider token"),
    (
        "token_hidden",
        "задан в файле настроек; не показывается",
        "set in the config file; never shown",
    ),
    ("sender", "Имя отправителя", "Sender name"),
    (
        "rest_name",
        "Название ресторана в SMS",
        "Restaurant name in the SMS",
    ),
    (
        "step",
        "Когда отправлять (шаг кухни)",
        "When to send (kitchen step)",
    ),
    ("template", "Шаблон сообщения", "Message template"),
    ("preview", "Предпросмотр", "Preview"),
    ("encoding", "Кодировка", "Encoding"),
    ("characters", "Символов", "Characters"),
    ("parts", "Частей SMS", "SMS parts"),
    (
        "consent",
        "Касса сама спрашивает согласие гостя",
        "The register asks the guest's consent itself",
    ),
    ("save", "Сохранить", "Save"),
    ("saved", "Сохранено", "Saved"),
    ("check_balance", "Проверить баланс", "Check balance"),
    ("balance", "Баланс", "Balance"),
    ("outbox", "Очередь сообщений", "Outbox"),
    ("phone", "Телефон", "Phone"),
    ("source", "Откуда значение", "Where the value comes from"),
    ("from_file", "из файла настроек", "from the config file"),
    (
        "from_console",
        "сохранено в консоли",
        "saved in the console",
    ),
    ("defaults", "по умолчанию", "defaults"),
    ("from_default", "по умолчанию", "default"),
    ("bot_token", "Токен Telegram-бота", "Telegram bot token"),
    ("token_set", "задан", "set"),
    ("token_unset", "не задан", "not set"),
    (
        "write_only",
        "только запись; не показывается",
        "write-only; never shown",
    ),
    ("owners_chat", "Чат владельцев", "Owners' chat"),
    (
        "utc_offset",
        "Часовой пояс (от UTC)",
        "Time zone (from UTC)",
    ),
    (
        "set_in_file",
        "задано в файле настроек; меняется там",
        "set in the config file; change it there",
    ),
    ("closing_time", "Время закрытия", "Closing time"),
    ("opening_hours", "Часы работы", "Opening hours"),
    (
        "routing",
        "Какие оповещения получает чат",
        "Alerts this chat receives",
    ),
    ("rules", "Правила и пороги", "Rules and thresholds"),
    (
        "send_test",
        "Отправить тестовое сообщение",
        "Send a test message",
    ),
    (
        "test_sent",
        "Тестовое сообщение отправлено",
        "Test message sent",
    ),
    ("history", "История оповещений", "Alert history"),
    ("received", "получено", "received"),
    (
        "alert_rest_name",
        "Название ресторана в сообщениях",
        "Restaurant name in messages",
    ),
    ("telegram_state", "Telegram", "Telegram"),
    ("last_sent", "Последняя доставка", "Last delivery"),
    ("last_error", "Последняя ошибка", "Last error"),
    ("pending", "В очереди", "Pending"),
    ("checking", "проверяется…", "checking…"),
    (
        "sms_enabled",
        "SMS гостям включены",
        "Guest SMS switched on",
    ),
    (
        "sms_global",
        "Общие настройки SMS",
        "SMS settings for all restaurants",
    ),
    (
        "sms_limits",
        "Защита от накрутки SMS (в файле настроек)",
        "Limits against SMS pumping (config file)",
    ),
    ("sms_countries", "коды стран", "country codes"),
    ("per_hour", "в час", "an hour"),
    ("per_day", "в сутки", "a day"),
    // The SMS outbox's states (`sms::store::MessageState`).
    ("sms_state_pending", "В очереди", "Pending"),
    ("sms_state_sending", "Отправляется", "Sending"),
    ("sms_state_sent", "Отправлено", "Sent"),
    ("sms_state_delivered", "Доставлено", "Delivered"),
    ("sms_state_undelivered", "Не доставлено", "Undelivered"),
    ("sms_state_failed", "Ошибка отправки", "Failed"),
    ("sms_state_no_consent", "Нет согласия", "No consent"),
    (
        "sms_state_refused_country",
        "Отказ: страна не разрешена",
        "Refused: country not allowed",
    ),
    (
        "sms_state_refused_hourly_cap",
        "Отказ: лимит в час",
        "Refused: hourly cap",
    ),
    (
        "sms_state_refused_daily_cap",
        "Отказ: лимит в сутки",
        "Refused: daily cap",
    ),
    ("add", "Добавить", "Add"),
    ("pause", "Приостановить", "Pause"),
    ("resume", "Возобновить", "Resume"),
    ("replay", "Повторить с", "Replay from"),
    ("delete", "Удалить", "Delete"),
    ("delivery_log", "Журнал доставки", "Delivery log"),
    ("dead_letters", "Недоставленные", "Dead letters"),
    ("resend", "Отправить снова", "Re-send"),
    ("paused", "приостановлен", "paused"),
    ("active", "активен", "active"),
    (
        "find_card",
        "Номер карты или телефон",
        "Card number or phone",
    ),
    ("find", "Найти", "Find"),
    ("holder", "Владелец", "Holder"),
    ("tier", "Уровень", "Tier"),
    ("ledger", "Движения бонусов", "Ledger"),
    ("operations", "Операции", "Operations"),
    ("block", "Заблокировать", "Block"),
    ("activate", "Активировать", "Activate"),
    ("adjust", "Скорректировать", "Adjust"),
    ("amount_kop", "Сумма, коп.", "Amount, kopecks"),
    ("reason", "Причина", "Reason"),
    ("registers", "Кассы", "Registers"),
    ("no_card", "Карта не найдена", "No such card"),
    ("role", "Роль", "Role"),
    ("restaurants", "Рестораны", "Restaurants"),
    (
        "forbidden",
        "Нет доступа: это не ваш ресторан или не ваша роль",
        "Not allowed: not your restaurant or not your role",
    ),
    ("not_found", "Не найдено", "Not found"),
    ("nothing", "Пока пусто", "Nothing yet"),
    ("url", "Адрес (URL)", "URL"),
    ("id", "Идентификатор", "Id"),
    ("format", "Формат", "Format"),
    (
        "situations",
        "Ситуации (через запятую)",
        "Situations (comma-separated)",
    ),
    (
        "restaurants_csv",
        "Рестораны (через запятую)",
        "Restaurants (comma-separated)",
    ),
    ("language", "English", "Русский"),
    ("yes", "да", "yes"),
    ("by_hour", "Выручка по часам", "Sales by hour"),
    ("average_check", "Средний чек", "Average check"),
    ("top_dishes", "Лучшие блюда", "Top dishes"),
    ("deleted_receipts", "Удалённые чеки", "Deleted receipts"),
    ("no", "нет", "no"),
];

/// Every word in `lang`, for the templates (`{{ t.orders }}`).
pub fn words(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    WORDS
        .iter()
        .map(|(k, ru, en)| (*k, if lang == Lang::Ru { *ru } else { *en }))
        .collect()
}

/// Kopecks as a Russian reads money: `1 234,50 ₽` (groups of three,
/// no-break spaces), the one format of [`crate::core::money::rub`];
/// `1,234.50 ₽` in English.
pub fn money(kopecks: i64, lang: Lang) -> String {
    let mut text = crate::core::money::rub(kopecks);
    if lang == Lang::En {
        text = text.replace(',', ".").replace('\u{a0}', ",");
    }
    text.push_str("\u{a0}₽");
    text
}

/// Thousandths of a unit (the journal's quantities) as a reader of `lang`
/// writes them: `1 234,500` in Russian (comma, no-break spaces between
/// groups of three), `1,234.500` in English. Always three decimals: a
/// quantity column lines up and `2,5` is not mistaken for 25.
pub fn quantity(thousandths: i64, lang: Lang) -> String {
    let (group, point) = match lang {
        Lang::Ru => ('\u{a0}', ','),
        Lang::En => (',', '.'),
    };
    let a = thousandths.unsigned_abs();
    let whole = (a / 1000).to_string();
    let mut out = String::with_capacity(whole.len() + 8);
    if thousandths < 0 {
        out.push('-');
    }
    for (i, d) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            out.push(group);
        }
        out.push(d);
    }
    out.push(point);
    out.push_str(&format!("{:03}", a % 1000));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_read_as_each_language_writes_them() {
        assert_eq!(quantity(2_500, Lang::Ru), "2,500");
        assert_eq!(quantity(-500, Lang::Ru), "-0,500");
        assert_eq!(quantity(0, Lang::Ru), "0,000");
        assert_eq!(quantity(1_234_500, Lang::Ru), "1\u{a0}234,500");
        assert_eq!(
            quantity(-12_345_678_001, Lang::Ru),
            "-12\u{a0}345\u{a0}678,001"
        );
        assert_eq!(quantity(1_234_500, Lang::En), "1,234.500");
        assert_eq!(quantity(999_999, Lang::En), "999.999");
        assert_eq!(quantity(i64::MIN, Lang::En), "-9,223,372,036,854,775.808");
    }

    #[test]
    fn money_reads_as_russian_money() {
        assert_eq!(money(123_450, Lang::Ru), "1\u{a0}234,50\u{a0}₽");
        assert_eq!(money(45_000, Lang::Ru), "450,00\u{a0}₽");
        assert_eq!(money(1_234_550, Lang::Ru), "12\u{a0}345,50\u{a0}₽");
        assert_eq!(money(-123_450, Lang::Ru), "-1\u{a0}234,50\u{a0}₽");
        assert_eq!(money(0, Lang::Ru), "0,00\u{a0}₽");
        assert_eq!(money(123_450, Lang::En), "1,234.50\u{a0}₽");
    }

    /// A state the SMS outbox can show must read as words in the console,
    /// the refusals against SMS pumping included.
    #[test]
    fn every_sms_state_has_a_label() {
        for lang in [Lang::Ru, Lang::En] {
            let w = words(lang);
            for s in crate::sms::store::MessageState::ALL {
                let key = format!("sms_state_{s}");
                assert!(w.contains_key(key.as_str()), "{key} ({lang:?})");
            }
        }
    }

    #[test]
    fn both_languages_have_every_word() {
        for (k, ru, en) in WORDS {
            assert!(!ru.is_empty() && !en.is_empty(), "{k}");
        }
        let mut keys: Vec<&str> = WORDS.iter().map(|w| w.0).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(n, keys.len(), "a word is listed twice");
    }
}
