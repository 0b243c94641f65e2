//! What a visitor's frames do: a message checked (limits, rate, its image) and sent to the
//! dispatcher in order, typing and read marks passed on, and the dispatcher's answers turned
//! into acks once their records are durable, in the order the messages were sent.

use super::*;

impl Connection {
    /// One frame from the visitor: checked against the limits, parsed, and handled by kind.
    ///
    /// One piece on purpose: one arm per frame kind of the contract, each a few lines.
    pub(super) async fn on_frame(&mut self, text: &str) -> Result<(), axum::Error> {
        let limits = &self.cfg.limits;
        if text.len() > limits.max_frame_bytes {
            let message = format!(
                "frame has {} bytes; the limit is {}",
                text.len(),
                limits.max_frame_bytes
            );
            return self
                .send_error(
                    FrameError::new("frame_too_large", message)
                        .for_client_id(wire::frame_client_id(text)),
                )
                .await;
        }
        if !self.bucket.take(Instant::now()) {
            return self
                .send_error(
                    FrameError::new("rate_limited", "too many messages; slow down")
                        .for_client_id(wire::frame_client_id(text)),
                )
                .await;
        }
        match wire::parse_visitor_frame(text, limits.max_text_chars) {
            Err(e) => {
                let client_id = wire::frame_client_id(text);
                self.send_error(e.for_client_id(client_id)).await
            }
            Ok(VisitorFrame::Typing) => {
                // Best effort: a busy dispatcher drops it rather than slowing this connection.
                let _ = self
                    .app
                    .commands
                    .try_send(Command::VisitorTyping(VisitorTyping {
                        identity: Identity::clone(&self.identity),
                    }));
                Ok(())
            }
            Ok(VisitorFrame::Read { message_id }) => {
                let _ = self
                    .app
                    .commands
                    .try_send(Command::VisitorRead(VisitorRead {
                        identity: Identity::clone(&self.identity),
                        message_id,
                    }));
                Ok(())
            }
            Ok(VisitorFrame::Message {
                client_id,
                text,
                attachment,
            }) => {
                if let Some(upload) = &attachment {
                    let visitor = &self.identity.external_id;
                    if !Box::pin(owns_upload(&self.app, visitor, upload)).await {
                        return self
                            .send_error(
                                FrameError::new(
                                    "bad_attachment",
                                    "no such upload from this visitor",
                                )
                                .for_client_id(Some(client_id.to_string())),
                            )
                            .await;
                    }
                }
                let client_id_for_reply = client_id.clone();
                let message = CustomerMessage {
                    identity: Identity::clone(&self.identity),
                    client_id: Some(client_id),
                    text,
                    attachment,
                };
                let replies = self
                    .replies_tx
                    .clone()
                    .expect("invariant: created before the first frame is handled");
                let cmd = Command::CustomerMessage(message, Reply::Stream(replies));
                let sent = match self.app.commands.try_send(cmd) {
                    Ok(()) => true,
                    // The dispatcher's queue is full: wait for room. Boxed, as a rare state
                    // that would otherwise enlarge every connection's task.
                    Err(mpsc::error::TrySendError::Full(cmd)) => {
                        Box::pin(self.app.commands.send(cmd)).await.is_ok()
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                };
                if !sent {
                    return self
                        .send_error(
                            FrameError::new(
                                "unavailable",
                                "server is stopping; resend after reconnecting",
                            )
                            .for_client_id(Some(client_id_for_reply.to_string())),
                        )
                        .await;
                }
                self.unanswered.push_back(client_id_for_reply);
                self.inflight += 1;
                Ok(())
            }
        }
    }

    pub(super) async fn on_reply(
        &mut self,
        reply: StreamReply,
        durable: Lsn,
    ) -> Result<(), axum::Error> {
        let client_id = self
            .unanswered
            .pop_front()
            .expect("invariant: one reply per message sent to the dispatcher");
        match reply {
            Ok(a) => {
                self.pending.push_back(Pending {
                    client_id,
                    message_id: a.message_id,
                    lsn: a.lsn,
                });
                self.ack_durable(durable).await
            }
            Err(e) => {
                self.inflight -= 1;
                let code = match e {
                    DispatchError::Unavailable => "unavailable",
                    _ => "internal",
                };
                tracing::warn!(visitor = %self.identity, error = %e, "message refused");
                self.send_error(
                    FrameError::new(code, "message not stored; resend it")
                        .for_client_id(Some(client_id.to_string())),
                )
                .await
            }
        }
    }

    /// Acks, in send order, every pending message that is durable.
    pub(super) async fn ack_durable(&mut self, durable: Lsn) -> Result<(), axum::Error> {
        while self.pending.front().is_some_and(|p| p.lsn <= durable) {
            let p = self
                .pending
                .pop_front()
                .expect("invariant: front checked above");
            self.inflight -= 1;
            self.send_text(wire::ack(&p.client_id, p.message_id))
                .await?;
        }
        Ok(())
    }

    pub(super) async fn send_error(&mut self, e: FrameError) -> Result<(), axum::Error> {
        self.send_text(wire::error(&e)).await
    }
}

/// Whether `visitor` uploaded `upload` (another visitor's image cannot be re-sent).
async fn owns_upload(app: &AppState, visitor: &str, upload: &str) -> bool {
    let (upload, visitor) = (upload.to_string(), visitor.to_string());
    app.reads
        .run(move |c| queries::upload_exists(c, &upload, Some(&visitor)))
        .await
        .unwrap_or(false)
}
