//! Authentication before validation, as FastAPI answers: its dependencies (who is
//! calling) are resolved before the body is validated, so an unauthenticated request with
//! a bad body is a 401, not a 422.
//!
//! actix polls a handler's extractors together and answers the first error any of them
//! returns, so a body that fails validation at once would beat an authentication that is
//! still looking the caller up. Each authentication extractor opens a [`Gate`] on the
//! request when it is created and moves it into its future, which closes it by ending
//! (dropping it); the body extractor, before it answers a validation error, waits until
//! every gate of the request is closed. If the caller was refused, that refusal has been
//! answered by then.

use std::rc::Rc;

use actix_web::{HttpMessage, HttpRequest};
use tokio::sync::watch;

/// The decisions still pending on one request.
#[derive(Clone, Default)]
struct Gates(Rc<std::cell::RefCell<Vec<watch::Receiver<bool>>>>);

/// Held by an authentication extractor's future; the gate closes when it is dropped.
pub struct Gate {
    _sender: watch::Sender<bool>,
}

impl Gate {
    /// A gate on `req`, open while the returned value lives.
    pub fn open(req: &HttpRequest) -> Gate {
        let (tx, rx) = watch::channel(false);
        let gates = req
            .extensions_mut()
            .get_or_insert_with(Gates::default)
            .clone();
        gates.0.borrow_mut().push(rx);
        Gate { _sender: tx }
    }
}

/// Waits until every authentication of `req` has decided.
pub async fn authenticated(req: &HttpRequest) {
    let pending: Vec<watch::Receiver<bool>> = match req.extensions().get::<Gates>() {
        Some(gates) => gates.0.borrow().clone(),
        None => return,
    };
    for mut gate in pending {
        // Nothing is ever sent: this ends when the sender is dropped.
        let _ = gate.changed().await;
    }
}
