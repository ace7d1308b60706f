//! `weft:platform/outbox` (0.4.0 and later): messages queued in the call's
//! unit of work.

/// One implementation for every WIT version that has the interface.
macro_rules! for_version {
    ($v:ident) => {
        mod $v {
            use crate::capabilities::bindings::$v::weft::platform::outbox;
            use crate::capabilities::{Capabilities, guest_error, in_tx};
            use crate::db::Scope;
            use crate::messaging::{Content, Messaging, SendError};

            fn content_of(msg: outbox::Message) -> Result<Content, SendError> {
                Ok(match msg {
                    outbox::Message::Email(e) => Content::Email {
                        to: e.to,
                        subject: e.subject,
                        html: e.html,
                        text: e.text,
                        headers: e.headers,
                    },
                    outbox::Message::Sms(s) => Content::Sms {
                        to: s.to,
                        body: s.body,
                    },
                    outbox::Message::Push(p) => Content::Push {
                        token: p.token,
                        title: p.title,
                        body: p.body,
                        data: p.data.into_iter().collect(),
                    },
                    outbox::Message::InApp(n) => Content::InApp {
                        user: n.user,
                        title: n.title,
                        body: n.body,
                        link: n.link,
                        data: if n.data.trim().is_empty() {
                            serde_json::Value::Object(Default::default())
                        } else {
                            serde_json::from_str(&n.data).map_err(|e| {
                                SendError::InvalidRequest(format!("data is not JSON: {e}"))
                            })?
                        },
                    },
                })
            }

            fn status_of(s: &str) -> Option<outbox::DeliveryStatus> {
                Some(match s {
                    "queued" => outbox::DeliveryStatus::Queued,
                    "sent" => outbox::DeliveryStatus::Sent,
                    "delivered" => outbox::DeliveryStatus::Delivered,
                    "bounced" => outbox::DeliveryStatus::Bounced,
                    "failed" => outbox::DeliveryStatus::Failed,
                    "dead" => outbox::DeliveryStatus::Dead,
                    _ => return None,
                })
            }

            impl outbox::Host for Capabilities {
                async fn send(
                    &mut self,
                    msg: outbox::Message,
                    idempotency_key: String,
                ) -> Result<String, SendError> {
                    let content = content_of(msg)?;
                    // Refuse bad input before taking the write lock.
                    self.services.messaging.check(&content, &idempotency_key)?;
                    let messaging = self.services.messaging.clone();
                    // The message is a write of the call's unit of work:
                    // queued if the call commits, never if it rolls back.
                    let id = in_tx!(self, write, |_s, unit| async {
                        // A call in a shared unit writes in its savepoint.
                        unit.write_parts().await?;
                        messaging.queue(unit, &content, &idempotency_key).await
                    })?;
                    self.queued_messages = true;
                    Ok(id)
                }

                async fn status(&mut self, id: String) -> wasmtime::Result<Option<outbox::DeliveryStatus>> {
                    let found = match self.unit_of_work.as_mut() {
                        Some(unit) => {
                            let (tx, owner) = unit.parts();
                            Messaging::status_in(tx, owner, &id).await
                        }
                        None => {
                            let owner = crate::storage::Owner {
                                tenant: &self.binding.tenant,
                                plugin: &self.binding.plugin,
                            };
                            let read = self
                                .services
                                .messaging
                                .db()
                                .begin_read(Scope::Tenant(owner.tenant))
                                .await;
                            match read {
                                Ok(mut tx) => {
                                    let out = Messaging::status_in(&mut tx, owner, &id).await;
                                    let _ = tx.commit().await;
                                    out
                                }
                                Err(crate::db::Error::Sqlx(e)) => Err(e),
                                Err(e) => Err(sqlx::Error::Protocol(e.to_string())),
                            }
                        }
                    };
                    match found {
                        Ok(status) => Ok(status.as_deref().and_then(status_of)),
                        Err(e) => {
                            tracing::error!(error = %e, "outbox status read failed");
                            Err(wasmtime::format_err!("host storage fault"))
                        }
                    }
                }

                fn convert_error(&mut self, err: SendError) -> wasmtime::Result<outbox::Error> {
                    Ok(match err {
                        SendError::InvalidRecipient(m) => outbox::Error::InvalidRecipient(m),
                        SendError::RateLimited(m) => outbox::Error::RateLimited(m),
                        SendError::QuotaExceeded(m) => outbox::Error::QuotaExceeded(m),
                        SendError::ChannelNotConfigured(m) => {
                            outbox::Error::ChannelNotConfigured(m)
                        }
                        SendError::InvalidRequest(m) => outbox::Error::InvalidRequest(m),
                        SendError::Storage(e) => return guest_error(e, |_| None),
                    })
                }
            }
        }
    };
}

for_version!(v0_4);
for_version!(v0_5);
