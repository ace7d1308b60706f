//! `weft:platform/events` (0.2.0 and later): publishing in the call's unit
//! of work.

/// One implementation for every WIT version that has the interface.
macro_rules! for_version {
    ($v:ident) => {
        mod $v {
            use crate::capabilities::bindings::$v::weft::platform::events;
            use crate::capabilities::{Capabilities, guest_error, in_tx};
            use crate::events::PublishError;

            impl events::Host for Capabilities {
                async fn publish(
                    &mut self,
                    topic: String,
                    payload: String,
                ) -> Result<String, PublishError> {
                    // Refuse bad input before taking the write lock.
                    let event = self.services.events.prepare(&topic, &payload)?;
                    // The event belongs to the call's unit of work: it is written when
                    // the unit commits, and never if it rolls back.
                    in_tx!(self, write, |_s, _u| async { Ok::<(), PublishError>(()) })?;
                    let id = event.id.clone();
                    self.events.push(event);
                    Ok(id)
                }

                fn convert_error(&mut self, err: PublishError) -> wasmtime::Result<events::Error> {
                    match err {
                        PublishError::InvalidTopic(m) => Ok(events::Error::InvalidTopic(m)),
                        PublishError::InvalidJson(m) => Ok(events::Error::InvalidJson(m)),
                        PublishError::TooLarge(n) => Ok(events::Error::TooLarge(n)),
                        PublishError::Storage(e) => guest_error(e, |_| None),
                    }
                }
            }
        }
    };
}

for_version!(v0_2);
for_version!(v0_3);
for_version!(v0_4);
for_version!(v0_5);
