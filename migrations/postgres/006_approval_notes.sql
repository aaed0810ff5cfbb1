-- What an approver wrote with the decision (the console's and the API's note).
ALTER TABLE approvals ADD COLUMN note TEXT;
