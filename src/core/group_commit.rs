//! Group commit: many callers, one committer, one sync per group.
//!
//! A durable commit costs a disk flush (milliseconds), whatever it holds.
//! When many callers want to write at once (64 cash servers posting, 32
//! registers buying), committing each alone makes every caller wait for
//! everyone else's flush. Instead each caller queues its request with a
//! reply slot; one committer takes whatever is queued (never waiting for
//! more, so a lone request is not delayed), writes it all in one
//! transaction, and answers every caller only after that commit. A failed
//! commit answers each caller with the failure, so nothing is acknowledged
//! that was not stored.
//!
//! Used by the event log writer and by loyalty's changing operations.

use tokio::sync::{mpsc, oneshot};

/// The committer has stopped (shutdown, or it failed): nothing was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the committer has stopped")]
pub struct Stopped;

/// The callers' side: cheap to clone.
pub struct Submitter<Req, Resp> {
    tx: mpsc::Sender<(Req, oneshot::Sender<Resp>)>,
}

impl<Req, Resp> Clone for Submitter<Req, Resp> {
    fn clone(&self) -> Self {
        Submitter {
            tx: self.tx.clone(),
        }
    }
}

impl<Req, Resp> std::fmt::Debug for Submitter<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submitter")
            .field("closed", &self.tx.is_closed())
            .finish()
    }
}

impl<Req, Resp> Submitter<Req, Resp> {
    /// Queues `req` and waits for the answer sent after its group's commit.
    /// The queue is bounded, so a flood waits here (and in the callers'
    /// TCP windows) instead of growing memory.
    pub async fn submit(&self, req: Req) -> Result<Resp, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((req, reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }
}

/// The committer's side: hands out groups.
pub struct Groups<Req, Resp> {
    rx: mpsc::Receiver<(Req, oneshot::Sender<Resp>)>,
    max: usize,
}

/// A group of requests and their callers' reply slots, in arrival order.
pub struct Group<Req, Resp> {
    pub requests: Vec<Req>,
    replies: Vec<oneshot::Sender<Resp>>,
}

/// A submitter and the committer's queue; `max` requests per group at most,
/// `queue` waiting at most before callers wait to queue.
pub fn channel<Req, Resp>(max: usize, queue: usize) -> (Submitter<Req, Resp>, Groups<Req, Resp>) {
    let (tx, rx) = mpsc::channel(queue.max(1));
    (
        Submitter { tx },
        Groups {
            rx,
            max: max.max(1),
        },
    )
}

impl<Req, Resp> Groups<Req, Resp> {
    /// Waits for one request, then takes whatever else is already queued,
    /// up to the group limit. `None` once every submitter is gone and the
    /// queue is empty: what was queued before is still handed out, so a
    /// shutdown commits everything received.
    pub async fn next(&mut self) -> Option<Group<Req, Resp>> {
        let (req, reply) = self.rx.recv().await?;
        let mut requests = Vec::with_capacity(self.max.min(64));
        let mut replies = Vec::with_capacity(self.max.min(64));
        requests.push(req);
        replies.push(reply);
        while requests.len() < self.max {
            match self.rx.try_recv() {
                Ok((req, reply)) => {
                    requests.push(req);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        Some(Group { requests, replies })
    }
}

impl<Req, Resp> Group<Req, Resp> {
    pub fn len(&self) -> usize {
        self.requests.len()
    }
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Answers every caller, in order, after the commit. A caller that gave
    /// up waiting is skipped. Panics if the answers do not match the
    /// requests one to one: that is a committer bug, not an input error.
    pub fn answer(self, answers: impl IntoIterator<Item = Resp>) {
        let mut n = 0;
        let mut replies = self.replies.into_iter();
        for a in answers {
            let reply = replies.next().expect("one answer per request");
            let _ = reply.send(a);
            n += 1;
        }
        assert!(
            replies.next().is_none(),
            "one answer per request ({n} given)"
        );
    }

    /// Answers every caller with the same value (a failed commit).
    pub fn answer_all(self, answer: Resp)
    where
        Resp: Clone,
    {
        for reply in self.replies {
            let _ = reply.send(answer.clone());
        }
    }

    /// The requests and the means to answer them later, for a committer
    /// that consumes its requests while writing.
    pub fn into_parts(self) -> (Vec<Req>, Replies<Resp>) {
        (self.requests, Replies(self.replies))
    }
}

/// Reply slots taken out of a [`Group`].
pub struct Replies<Resp>(Vec<oneshot::Sender<Resp>>);

impl<Resp> Replies<Resp> {
    pub fn answer(self, answers: impl IntoIterator<Item = Resp>) {
        Group {
            requests: Vec::<()>::new(),
            replies: self.0,
        }
        .answer(answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_requests_commit_together_and_answers_come_after() {
        let (submit, mut groups) = channel::<u32, Result<u32, String>>(3, 16);
        let mut callers = Vec::new();
        for i in 0..5 {
            let s = submit.clone();
            callers.push(tokio::spawn(async move { s.submit(i).await }));
        }
        // Let all five queue before the committer looks.
        tokio::task::yield_now().await;
        while submit.tx.capacity() > 11 {
            tokio::task::yield_now().await;
        }
        let g1 = groups.next().await.unwrap();
        assert_eq!(g1.len(), 3, "takes what is queued, up to the limit");
        let doubled: Vec<_> = g1.requests.iter().map(|r| Ok(r * 2)).collect();
        g1.answer(doubled);
        let g2 = groups.next().await.unwrap();
        assert_eq!(g2.len(), 2);
        g2.answer_all(Err("disk full".into()));
        let mut got = Vec::new();
        for c in callers {
            got.push(c.await.unwrap().unwrap());
        }
        assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 3);
        assert_eq!(got.iter().filter(|r| r.is_err()).count(), 2);
    }

    #[tokio::test]
    async fn queued_requests_survive_the_last_submitter_leaving() {
        let (submit, mut groups) = channel::<u32, u32>(8, 8);
        let s = submit.clone();
        let caller = tokio::spawn(async move { s.submit(7).await });
        drop(submit);
        let g = groups.next().await.expect("queued before the end");
        g.answer([70]);
        assert_eq!(caller.await.unwrap(), Ok(70));
        assert!(groups.next().await.is_none());
    }

    #[tokio::test]
    async fn a_stopped_committer_is_an_error_not_a_hang() {
        let (submit, groups) = channel::<u32, u32>(8, 8);
        drop(groups);
        assert_eq!(submit.submit(1).await, Err(Stopped));
    }
}
