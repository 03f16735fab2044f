//! Who is signed in and how big the cart is, shared by the header and the
//! pages that change either. Any sign-in, sign-out or cart change bumps the
//! version, which refetches the state.

use leptos::prelude::*;

use crate::server::account::{get_account, AccountState};

#[derive(Clone, Copy)]
pub struct Account {
    pub version: RwSignal<u64>,
    pub state: Resource<Result<AccountState, ServerFnError>>,
}

impl Account {
    pub fn provide() {
        let version = RwSignal::new(0u64);
        let state = Resource::new(move || version.get(), |_| get_account());
        provide_context(Account { version, state });
    }

    pub fn get() -> Account {
        expect_context::<Account>()
    }

    /// Something changed: refetch the header's view of the account.
    pub fn changed(&self) {
        self.version.update(|v| *v += 1);
    }
}
