mod sms_pumping;
