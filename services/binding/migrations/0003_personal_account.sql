-- Whether a person has an employee-insurance personal account (个人账户), from identity's
-- PersonRegistered: family mutual aid (家庭账户共济) needs the holder to have one.
ALTER TABLE persons ADD COLUMN personal_account boolean NOT NULL DEFAULT false;
